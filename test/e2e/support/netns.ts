import { spawnSync } from 'node:child_process';
import { runTool } from '../../../src/pxe/testing/run-tool.ts';

/**
 * The test's own network, made with `ip` (the only module that runs it):
 *
 *   [site netns]  vsite 10.77.0.2 (the site's DHCP server)
 *        | veth
 *   [pxe netns]   vpxe --+
 *                        br0 10.77.0.1 (proxyDHCP, TFTP, the boot server's forwarder)
 *                 tap0 --+ (the VM)
 *
 * Nothing is connected to the host's own network. Removed by `remove()`, and by an exit hook if the
 * process ends without it.
 */
export interface PxeTestNetwork {
  siteNs: string;
  pxeNs: string;
  bridge: string;
  tap: string;
  /** Our address on the bridge. */
  serverAddress: string;
  /** The site DHCP server's address. */
  siteAddress: string;
  /** The site DHCP server's interface (in siteNs). */
  siteInterface: string;
  remove(): Promise<void>;
}

export const NETWORK = { prefix: '10.77.0', server: '10.77.0.1', site: '10.77.0.2', range: ['10.77.0.100', '10.77.0.150'] as const };

async function ip(args: string[]): Promise<void> {
  const r = await runTool('ip', args, { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`e2e: ip ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

/** Creates both namespaces, the veth pair, the bridge and the tap device. */
export async function createPxeTestNetwork(tag: string): Promise<PxeTestNetwork> {
  const siteNs = `metal-site-${tag}`;
  const pxeNs = `metal-pxe-${tag}`;
  let removed = false;
  const removeSync = () => {
    if (removed) return;
    removed = true;
    for (const ns of [pxeNs, siteNs]) spawnSync('ip', ['netns', 'delete', ns], { timeout: 10_000, stdio: 'ignore' });
  };
  process.once('exit', removeSync);
  const net: PxeTestNetwork = {
    siteNs,
    pxeNs,
    bridge: 'br0',
    tap: 'tap0',
    serverAddress: NETWORK.server,
    siteAddress: NETWORK.site,
    siteInterface: 'vsite',
    async remove() {
      process.off('exit', removeSync);
      if (removed) return;
      removed = true;
      const errors: string[] = [];
      for (const ns of [pxeNs, siteNs]) {
        const r = await runTool('ip', ['netns', 'delete', ns], { timeoutMs: 10_000 });
        if (r.code !== 0 && !/No such file/.test(r.stderr)) errors.push(r.stderr.trim());
      }
      if (errors.length) throw new Error(`e2e: could not remove the test namespaces: ${errors.join('; ')}`);
    },
  };
  try {
    await ip(['netns', 'add', siteNs]);
    await ip(['netns', 'add', pxeNs]);
    await ip(['-n', pxeNs, 'link', 'set', 'lo', 'up']);
    await ip(['-n', siteNs, 'link', 'set', 'lo', 'up']);
    await ip(['-n', pxeNs, 'link', 'add', 'br0', 'type', 'bridge']);
    await ip(['-n', pxeNs, 'addr', 'add', `${NETWORK.server}/24`, 'dev', 'br0']);
    await ip(['-n', pxeNs, 'link', 'add', 'vpxe', 'type', 'veth', 'peer', 'name', 'vsite', 'netns', siteNs]);
    await ip(['-n', pxeNs, 'link', 'set', 'vpxe', 'master', 'br0']);
    await ip(['-n', pxeNs, 'tuntap', 'add', 'dev', 'tap0', 'mode', 'tap']);
    await ip(['-n', pxeNs, 'link', 'set', 'tap0', 'master', 'br0']);
    for (const dev of ['br0', 'vpxe', 'tap0']) await ip(['-n', pxeNs, 'link', 'set', dev, 'up']);
    await ip(['-n', siteNs, 'addr', 'add', `${NETWORK.site}/24`, 'dev', 'vsite']);
    await ip(['-n', siteNs, 'link', 'set', 'vsite', 'up']);
  } catch (err) {
    await net.remove().catch(() => {});
    throw err;
  }
  return net;
}

/** Whether network namespaces can be made here (root with `ip` and /dev/net/tun). */
export function netnsUnavailableReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const r = spawnSync('ip', ['netns', 'list'], { timeout: 5000 });
  if (r.error || r.status !== 0) return `ip netns does not work here: ${r.error?.message ?? r.stderr.toString().trim()}`;
  return undefined;
}
