import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** kmod's modprobe; /usr/sbin is not on an ordinary user's PATH on Debian. */
const MODPROBE = ['/usr/sbin/modprobe', '/sbin/modprobe'].find((p) => existsSync(p)) ?? 'modprobe';

/** The virtio drivers a lab VM needs (network and disk), in the order their dependencies require. */
export const VIRTIO_MODULES = ['virtio_pci', 'virtio_net', 'virtio_blk'] as const;

/** A kernel module file to load in the initrd. */
export interface ModuleFile {
  /** e.g. `virtio_net` */
  name: string;
  /** e.g. `/lib/modules/6.1.0-56-cloud-amd64/kernel/drivers/net/virtio_net.ko` */
  path: string;
}

/**
 * Asks `modprobe --show-depends` for each module and returns every file to insert, dependencies first,
 * each once. Built-in modules contribute nothing.
 */
export async function resolveModuleFiles(kernelVersion: string, modules: readonly string[]): Promise<ModuleFile[]> {
  if (!/^[A-Za-z0-9._+-]+$/.test(kernelVersion)) throw new Error(`lab: invalid kernel version ${JSON.stringify(kernelVersion)}`);
  const files: ModuleFile[] = [];
  const seen = new Set<string>();
  for (const module of modules) {
    if (!/^[A-Za-z0-9_-]+$/.test(module)) throw new Error(`lab: invalid module name ${JSON.stringify(module)}`);
    let stdout: string;
    try {
      ({ stdout } = await run(MODPROBE, ['--set-version', kernelVersion, '--show-depends', module], { timeout: 10_000 }));
    } catch (err) {
      const reason = (err as { stderr?: string }).stderr?.trim() || (err as Error).message;
      throw new Error(`lab: modprobe could not resolve ${module} for ${kernelVersion}: ${reason}`);
    }
    for (const line of stdout.split('\n')) {
      const path = /^insmod (\S+\.ko(?:\.xz|\.zst|\.gz)?)/.exec(line.trim())?.[1];
      if (!path || seen.has(path)) continue;
      if (!path.endsWith('.ko')) throw new Error(`lab: ${path} is compressed; the lab needs uncompressed modules`);
      seen.add(path);
      files.push({ name: basename(path, '.ko'), path });
    }
  }
  return files;
}
