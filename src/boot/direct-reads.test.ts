import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { attachDirectReads, detachDirectReads, directReadsAvailable } from './direct-reads.ts';
import { pollUntil } from '../../test/support/poll.ts';

/** A server and one client connected to it; `accepted` is the server's side. */
async function connectedPair(): Promise<{ client: Socket; accepted: Socket; close(): Promise<void> }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const acceptedNow = once(server, 'connection') as Promise<[Socket]>;
  const client = createConnection((server.address() as AddressInfo).port, '127.0.0.1');
  const [accepted] = await acceptedNow;
  await once(client, 'connect');
  return {
    client,
    accepted,
    close: async () => {
      client.destroy();
      accepted.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** Resolves when `check` holds, polling; fails after `ms`. */
async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  await pollUntil(what, check, { timeoutMs: ms, intervalMs: 5 });
}

describe('direct reads of accepted connections', { timeout: 30_000 }, () => {
  test('this Node allows them (else the boot front reads through the stream, slower)', async () => {
    const pair = await connectedPair();
    try {
      assert.equal(directReadsAvailable(pair.accepted), true, `Node ${process.version}: net.Socket no longer has the onread fields the boot front uses`);
    } finally {
      await pair.close();
    }
  });

  test('bytes arrive in the shared buffer, not as data events; pause and resume hold and release them; detached, they are data events again', async () => {
    const pair = await connectedPair();
    try {
      const got: string[] = [];
      const events: string[] = [];
      pair.accepted.on('data', (chunk: Buffer) => events.push(chunk.toString()));
      let shared: Buffer | undefined;
      assert.equal(
        attachDirectReads(pair.accepted, (length, buffer) => {
          shared ??= buffer;
          assert.equal(buffer, shared, 'one buffer for every read');
          got.push(buffer.toString('latin1', 0, length));
        }),
        true,
      );
      assert.equal(attachDirectReads(pair.accepted, () => undefined), false, 'a socket already reading that way is left alone');

      pair.client.write('first');
      await until(() => got.join('') === 'first', 'the first bytes');
      assert.deepEqual(events, []);

      pair.accepted.pause();
      pair.client.write('held');
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(got.join(''), 'first', 'nothing is read while paused');
      pair.accepted.resume();
      await until(() => got.join('') === 'firstheld', 'the bytes sent while paused');

      detachDirectReads(pair.accepted);
      pair.client.write('later');
      await until(() => events.join('') === 'later', 'a data event');
      assert.equal(got.join(''), 'firstheld', 'the callback no longer gets them');

      const ended = once(pair.accepted, 'end');
      pair.client.end();
      await ended;
    } finally {
      await pair.close();
    }
  });
});
