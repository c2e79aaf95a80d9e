import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { stopChild } from './site-dhcp.ts';

const METAL = new URL('../../../bin/metal.js', import.meta.url).pathname;

/** `metal serve --roles pxe` running inside a namespace: its log lines and how to stop it. */
export interface PxeRoleProcess {
  /** Everything it logged (JSON lines). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts `metal serve --roles pxe` inside `netns` as the product runs it: proxyDHCP on `iface`,
 * TFTP on port 69 serving `ipxeDir`, answering iPXE with `bootUrl`/boot.ipxe; with `dhcpRange`, full DHCP.
 * `runAs` is a command prefix that drops privileges (test/support/unit-privileges.ts), as the
 * `metal-pxe` unit does; `dataDir` must then be the unprivileged user's.
 */
export async function startPxeRole(
  netns: string,
  options: { iface: string; ipxeDir: string; bootUrl: string; dataDir: string; dhcpRange?: string; runAs?: string[] },
): Promise<PxeRoleProcess> {
  const env = {
    ...process.env,
    METAL_DATA_DIR: options.dataDir,
    METAL_DATABASE_URL: `sqlite:${join(options.dataDir, 'pxe.db')}`,
    METAL_PROXYDHCP_INTERFACE: options.iface,
    METAL_TFTP_LISTEN: '0.0.0.0:69',
    METAL_IPXE_DIR: options.ipxeDir,
    METAL_BOOT_URL: options.bootUrl,
    METAL_LOG_LEVEL: 'debug',
    ...(options.dhcpRange ? { METAL_DHCP_RANGE: options.dhcpRange } : {}),
  };
  const child = spawn('ip', ['netns', 'exec', netns, ...(options.runAs ?? []), process.execPath, METAL, 'serve', '--roles', 'pxe'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const stop = () => stopChild(child, 10_000);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`e2e: metal serve --roles pxe was not ready in 60 s:\n${out}`)), 60_000);
      const check = () => {
        if (out.includes('"metal: ready"')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', check);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`e2e: metal serve --roles pxe exited (${code}):\n${out}`));
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { output: () => out, stop };
}
