import { gzipSync } from 'node:zlib';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

interface Entry {
  name: string;
  mode: number;
  data: Buffer;
  rdevMajor: number;
  rdevMinor: number;
}

/**
 * An initramfs archive (cpio "newc", gzip) built in memory, so every entry is owned by root with a
 * fixed time whatever the staging files on the host look like.
 */
export class NewcArchive {
  private readonly entries = new Map<string, Entry>();

  /** Adds a directory and its missing parents. e.g. `lib/modules` */
  addDirectory(path: string, mode = 0o755): this {
    const name = normalize(path);
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) this.ensureDirectory(parts.slice(0, i).join('/'));
    this.put({ name, mode: S_IFDIR | mode, data: Buffer.alloc(0), rdevMajor: 0, rdevMinor: 0 });
    return this;
  }

  /** Adds a regular file (parents are created). */
  addFile(path: string, data: Buffer | string, mode = 0o644): this {
    const name = normalize(path);
    this.ensureParents(name);
    this.put({ name, mode: S_IFREG | mode, data: Buffer.from(data), rdevMajor: 0, rdevMinor: 0 });
    return this;
  }

  /** Adds a symbolic link. e.g. `bin/sh` -> `busybox` */
  addSymlink(path: string, target: string): this {
    const name = normalize(path);
    this.ensureParents(name);
    this.put({ name, mode: S_IFLNK | 0o777, data: Buffer.from(target), rdevMajor: 0, rdevMinor: 0 });
    return this;
  }

  /** Adds a character device node, e.g. `dev/console` 5:1. */
  addCharDevice(path: string, major: number, minor: number, mode = 0o600): this {
    const name = normalize(path);
    this.ensureParents(name);
    this.put({ name, mode: S_IFCHR | mode, data: Buffer.alloc(0), rdevMajor: major, rdevMinor: minor });
    return this;
  }

  /** The archive bytes, uncompressed. */
  toCpio(): Buffer {
    const chunks: Buffer[] = [];
    let ino = 1;
    for (const entry of this.entries.values()) chunks.push(...record(entry, ino++));
    chunks.push(...record({ name: 'TRAILER!!!', mode: 0, data: Buffer.alloc(0), rdevMajor: 0, rdevMinor: 0 }, 0));
    return Buffer.concat(chunks);
  }

  /** The archive bytes, gzip-compressed, as the kernel loads an initrd. */
  toGzip(): Buffer {
    return gzipSync(this.toCpio(), { level: 6 });
  }

  private ensureParents(name: string): void {
    const slash = name.lastIndexOf('/');
    if (slash > 0) this.addDirectory(name.slice(0, slash));
  }

  private ensureDirectory(name: string): void {
    if (!this.entries.has(name)) this.put({ name, mode: S_IFDIR | 0o755, data: Buffer.alloc(0), rdevMajor: 0, rdevMinor: 0 });
  }

  private put(entry: Entry): void {
    const existing = this.entries.get(entry.name);
    if (existing && (existing.mode & S_IFDIR) !== 0 && (entry.mode & S_IFDIR) !== 0) return;
    this.entries.set(entry.name, entry);
  }
}

function normalize(path: string): string {
  const name = path.replace(/^\/+/, '').replace(/\/+$/, '');
  if (name === '' || name.split('/').some((p) => p === '' || p === '.' || p === '..') || name.includes('\0')) {
    throw new Error(`initrd: invalid archive path ${JSON.stringify(path)}`);
  }
  return name;
}

function record(entry: Entry, ino: number): Buffer[] {
  const name = Buffer.from(`${entry.name}\0`);
  const fields = [ino, entry.mode, 0, 0, (entry.mode & S_IFDIR) !== 0 ? 2 : 1, 0, entry.data.length, 0, 0, entry.rdevMajor, entry.rdevMinor, name.length, 0];
  const header = Buffer.from(`070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`, 'ascii');
  return [header, name, padding(header.length + name.length), entry.data, padding(entry.data.length)];
}

function padding(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}
