import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { NETWORK } from './netns.ts';

/** The site's DHCP server: dnsmasq with addresses only (no PXE options, no TFTP, no DNS). */
export interface SiteDhcp {
  pid: number;
  /** What dnsmasq printed (its DHCP log). */
  output(): string;
  stop(): Promise<void>;
}

/** Starts dnsmasq inside `netns` on `iface`, handing out NETWORK.range, and records its PID. */
export async function startSiteDhcp(netns: string, iface: string, workDir: string): Promise<SiteDhcp> {
  const args = [
    'netns', 'exec', netns,
    'dnsmasq',
    '--no-daemon',
    '--conf-file=/dev/null',
    '--port=0',
    `--interface=${iface}`,
    '--bind-interfaces',
    `--dhcp-range=${NETWORK.range[0]},${NETWORK.range[1]},255.255.255.0,1h`,
    `--dhcp-leasefile=${join(workDir, 'site-dhcp.leases')}`,
    '--dhcp-authoritative',
    '--log-dhcp',
    '--log-facility=-',
  ];
  // `ip netns exec` execs dnsmasq: this PID is dnsmasq's own.
  const child: ChildProcess = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`e2e: dnsmasq did not start in 10 s:\n${out}`)), 10_000);
    const check = () => {
      if (/DHCP, IP range/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`e2e: dnsmasq exited (${code}):\n${out}`));
    });
  });
  return {
    pid: child.pid!,
    output: () => out,
    stop: () => stopChild(child, 5000),
  };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
