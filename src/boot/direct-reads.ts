import type { Socket } from 'node:net';

/**
 * Reads of accepted connections into one buffer of our own, as `net.Socket`'s `onread` option
 * (https://nodejs.org/docs/latest-v20.x/api/net.html#socketconnectoptions-connectlistener) does for
 * the connections a program opens itself: each read lands in that buffer and is handed to a
 * callback, instead of going through the readable stream, which allocates a 64 KiB buffer and an
 * `ArrayBuffer` for every read. Node offers the option only when a socket is created, and a server
 * creates the sockets it accepts itself, so `attachDirectReads` switches an accepted socket the way
 * Node's constructor does for `onread` (the socket's own `kBuffer`/`kBufferCb` fields and
 * `useUserBuffer` on its handle). Where those are not as expected (another Node version), it does
 * nothing and says so, and the caller reads through the stream as before: the answers are the same,
 * only the cost differs. `directReadsAvailable` is checked by a test, so a Node upgrade that changes
 * them fails loudly instead of slowing down silently.
 *
 * One buffer serves every connection: reads are delivered one at a time on the event loop, and a
 * callback must not keep a view of the bytes after it returns (it copies what it keeps).
 */

/** Called with the bytes of one read, `buffer[0..length)`, valid until it returns; false stops reading. */
export type DirectReadCallback = (length: number, buffer: Buffer) => boolean | void;

/** Room for the largest read: what libuv asks for on a stream (64 KiB). */
const READ_BUFFER_BYTES = 65536;

interface Fields {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

interface StreamHandle {
  useUserBuffer?(buffer: Uint8Array): void;
}

let shared: Buffer | undefined;
let fields: Fields | null | undefined;

/** The socket's fields that hold an `onread` buffer and callback, when it has them as Node 20 and 22 do. */
function fieldsOf(socket: Socket): Fields | null {
  if (fields !== undefined) return fields;
  const byName = new Map(Object.getOwnPropertySymbols(socket).map((s) => [s.description, s]));
  const buffer = byName.get('kBuffer');
  const callback = byName.get('kBufferCb');
  const generator = byName.get('kBufferGen');
  const handle = (socket as unknown as { _handle?: StreamHandle })._handle;
  fields = buffer && callback && generator && typeof handle?.useUserBuffer === 'function' ? { buffer, callback, generator } : null;
  return fields;
}

/** Whether this Node can read accepted connections into our own buffer (checked on a real socket). */
export function directReadsAvailable(socket: Socket): boolean {
  return fieldsOf(socket) !== null;
}

/**
 * Switches a freshly accepted socket to reads into the shared buffer, each handed to `onRead`; false
 * when this Node does not allow it or the socket already reads that way (then nothing changed).
 */
export function attachDirectReads(socket: Socket, onRead: DirectReadCallback): boolean {
  const f = fieldsOf(socket);
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
  const own = socket as unknown as Record<symbol, unknown>;
  if (!f || !handle?.useUserBuffer || own[f.buffer] !== null || socket.destroyed) return false;
  shared ??= Buffer.allocUnsafe(READ_BUFFER_BYTES);
  own[f.buffer] = shared;
  own[f.callback] = onRead;
  own[f.generator] = null;
  handle.useUserBuffer(shared);
  return true;
}

/**
 * Hands later reads back to the readable stream (`data` events), copying each out of the shared
 * buffer: for a connection given to a server that reads the stream itself. Node's HTTP server reads
 * the handle directly while it owns the connection, so this path carries only what it does not.
 */
export function detachDirectReads(socket: Socket): void {
  const f = fieldsOf(socket);
  if (!f) return;
  (socket as unknown as Record<symbol, unknown>)[f.callback] = (length: number, buffer: Buffer) => socket.push(Buffer.from(buffer.subarray(0, length)));
}
