import { copyFile, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { EfiSigner } from './secure-boot.ts';

/** A file name the iPXE routes and the TFTP server serve: one plain name, no leading dot. */
const SERVED_NAME = /^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$/;

/** What one preparation did. */
export interface SignedIpxeDir {
  dir: string;
  /** EFI binaries signed, e.g. `['ipxe.efi', 'snponly.efi']` */
  signed: string[];
  /** Other binaries copied as they are (BIOS ones: Secure Boot is a UEFI matter), e.g. `['undionly.kpxe']` */
  copied: string[];
}

/**
 * Fills `target` with the iPXE binaries of `source` (METAL_IPXE_DIR) for Secure Boot machines: each
 * `.efi` signed with the site's key, the rest copied, every file written beside its final name and
 * renamed into place (so several processes preparing it at once, boot workers say, never serve half
 * a file), and files no longer in `source` removed. A missing `source` leaves `target` empty.
 */
export async function prepareSignedIpxeDir(source: string, target: string, signer: EfiSigner): Promise<SignedIpxeDir> {
  await mkdir(target, { recursive: true, mode: 0o755 });
  const names = await readdir(source).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return [] as string[];
    throw err;
  });
  const result: SignedIpxeDir = { dir: target, signed: [], copied: [] };
  const kept = new Set<string>();
  for (const name of names.filter((n) => SERVED_NAME.test(n)).sort()) {
    const from = join(source, name);
    const st = await stat(from).catch(() => undefined);
    if (!st?.isFile()) continue;
    const to = join(target, name);
    if (name.endsWith('.efi')) {
      await signer.sign(from, to);
      result.signed.push(name);
    } else {
      const temp = `${to}.copying-${process.pid}`;
      await copyFile(from, temp);
      await rename(temp, to);
      result.copied.push(name);
    }
    kept.add(name);
  }
  for (const name of await readdir(target)) {
    if (SERVED_NAME.test(name) && !kept.has(name) && !/\.(signing|copying)-\d+$/.test(name)) await rm(join(target, name), { force: true });
  }
  return result;
}
