import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The applets a busybox binary provides, as absolute paths. e.g. `/bin/sh`, `/sbin/udhcpc` */
export async function listBusyboxApplets(busybox: string): Promise<string[]> {
  const { stdout } = await run(busybox, ['--list-full'], { timeout: 10_000 });
  const applets = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^[a-z0-9/_.[-]+$/i.test(l) && !l.split('/').includes('..'))
    .map((l) => `/${l}`);
  if (!applets.includes('/bin/sh')) throw new Error(`lab: ${busybox} --list-full did not list bin/sh`);
  return applets;
}
