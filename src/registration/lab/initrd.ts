import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { listBusyboxApplets } from './busybox-applets.ts';
import { resolveModuleFiles, VIRTIO_MODULES } from './kernel-modules.ts';
import type { LabHost } from './lab-host.ts';
import { NewcArchive } from './newc-archive.ts';

/** The shell files every lab initrd carries, beside this module. */
export const INITRD_FILES_DIR = new URL('./initrd-files/', import.meta.url).pathname;

/** A file to put into the initrd besides busybox, the drivers and the network set-up. */
export interface InitrdFile {
  /** Absolute path inside the initrd. e.g. `/usr/bin/metal-agent` */
  path: string;
  data: Buffer | string;
  mode?: number;
}

/**
 * Assembles a small initrd from host packages: busybox-static with its applet links, the cloud kernel's
 * virtio drivers with a load list in dependency order, a DHCP script that copes with an empty router
 * option, and the given `/init` and extra files. Returns the gzip-compressed newc archive.
 */
export async function assembleLabInitrd(host: LabHost, init: string, files: readonly InitrdFile[] = []): Promise<Buffer> {
  const archive = new NewcArchive();
  for (const dir of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev', 'run', 'tmp', 'etc/metal', 'var/run', 'root']) {
    archive.addDirectory(dir, dir === 'tmp' ? 0o1777 : 0o755);
  }
  archive.addCharDevice('dev/console', 5, 1).addCharDevice('dev/null', 1, 3, 0o666);

  archive.addFile('bin/busybox', await readFile(host.busybox), 0o755);
  for (const applet of await listBusyboxApplets(host.busybox)) {
    if (applet !== '/bin/busybox') archive.addSymlink(applet, '/bin/busybox');
  }

  const modules = await resolveModuleFiles(host.kernelVersion, VIRTIO_MODULES);
  const loadList: string[] = [];
  for (const module of modules) {
    const target = `/lib/modules/${host.kernelVersion}/${basename(module.path)}`;
    archive.addFile(target, await readFile(module.path));
    loadList.push(target);
  }
  archive.addFile('etc/metal/modules', `${loadList.join('\n')}\n`);
  archive.addFile('etc/metal/udhcpc.script', await readFile(`${INITRD_FILES_DIR}udhcpc.script`), 0o755);
  archive.addFile('etc/metal/bring-up.sh', await readFile(`${INITRD_FILES_DIR}bring-up.sh`));
  archive.addFile('etc/hostname', 'metal-lab\n');

  for (const file of files) archive.addFile(file.path, file.data, file.mode ?? 0o644);
  archive.addFile('init', init, 0o755);
  return archive.toGzip();
}
