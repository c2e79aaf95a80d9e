/** One entry of a newc archive as read back. */
export interface NewcEntry {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  /** Device numbers of a device node. e.g. `[5, 1]` */
  rdev: [number, number];
  data: Buffer;
}

/**
 * Reads an uncompressed newc archive back, checking magic, alignment and trailer as the kernel does:
 * how the lab checks the initrds it builds.
 */
export function readNewc(buf: Buffer): NewcEntry[] {
  const out: NewcEntry[] = [];
  let off = 0;
  for (;;) {
    if (off % 4 !== 0 || buf.toString('ascii', off, off + 6) !== '070701') throw new Error(`newc: no header at offset ${off}`);
    const field = (i: number) => parseInt(buf.toString('ascii', off + 6 + i * 8, off + 14 + i * 8), 16);
    const [mode, uid, gid, size, rdevMajor, rdevMinor, nameSize] = [field(1), field(2), field(3), field(6), field(9), field(10), field(11)];
    if (buf[off + 110 + nameSize - 1] !== 0) throw new Error(`newc: name at offset ${off} does not end with NUL`);
    const name = buf.toString('utf8', off + 110, off + 110 + nameSize - 1);
    off += Math.ceil((110 + nameSize) / 4) * 4;
    if (name === 'TRAILER!!!') break;
    out.push({ name, mode, uid, gid, rdev: [rdevMajor, rdevMinor], data: buf.subarray(off, off + size) });
    off += Math.ceil(size / 4) * 4;
  }
  if (off !== buf.length) throw new Error(`newc: ${buf.length - off} bytes after the trailer`);
  return out;
}
