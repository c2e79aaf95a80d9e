import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createPxeTestNetwork, NETWORK, netnsUnavailableReason, type PxeTestNetwork } from '../e2e/support/netns.ts';
import { startPxeRole } from '../e2e/support/pxe-role-process.ts';
import { parse } from 'yaml';
import { dropPrivileges, UNPRIVILEGED, unitCapabilities, unitPrivileges, unprivilegedDir } from '../support/unit-privileges.ts';

/**
 * deploy/systemd/metal-pxe.service runs the pxe role as an unprivileged user with one capability,
 * CAP_NET_BIND_SERVICE (the NixOS module's unit too). Here the role runs with exactly what the unit gives
 * it (setpriv), in a network namespace of its own, and must bind proxyDHCP (67, 4011) and TFTP (69) and
 * serve a file; so must it as the Kubernetes DaemonSet runs it (uid 0, that capability alone); without the
 * capability it must refuse to start, naming the setting. (The e2e proxyDHCP boots run it as the unit.)
 */

const IPXE_DIR = '/usr/lib/ipxe';
const UNIT = 'metal-pxe.service';

function skipReason(): string | undefined {
  const missing = [
    netnsUnavailableReason(),
    spawnSync('setpriv', ['--version'], { timeout: 5000 }).status === 0 ? undefined : 'no setpriv (Debian package util-linux)',
    spawnSync('curl', ['--version'], { timeout: 5000 }).status === 0 ? undefined : 'no curl (Debian package curl)',
    readable(IPXE_DIR) ? undefined : `no ${IPXE_DIR}/undionly.kpxe (Debian package ipxe)`,
  ].filter(Boolean);
  if (missing.length === 0) {
    // The role's code is read by the unprivileged user: the checkout must be readable by others.
    const probe = spawnSync('setpriv', [`--reuid=${UNPRIVILEGED.uid}`, `--regid=${UNPRIVILEGED.gid}`, '--clear-groups', '--', 'test', '-r', new URL('../../bin/metal.js', import.meta.url).pathname], { timeout: 5000 });
    if (probe.status !== 0) missing.push(`this checkout is not readable by uid ${UNPRIVILEGED.uid} (make its parent directories o+rx)`);
  }
  if (missing.length === 0) return undefined;
  const reason = missing.join('; ');
  if (process.env.CI === 'true') throw new Error(`required in CI: ${reason}`);
  console.warn(`\n*** SKIPPING the pxe unit's privileges test: ${reason} ***\n`);
  return reason;
}

function readable(dir: string): boolean {
  try {
    readFileSync(join(dir, 'undionly.kpxe'));
    return true;
  } catch {
    return false;
  }
}

/** A command inside the namespace, with a time limit. */
function inNamespace(ns: string, args: string[]): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...args], { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr?.toString() ?? '' };
}

describe(`the pxe role with what ${UNIT} gives it`, { skip: skipReason() }, () => {
  let work: string;
  let net: PxeTestNetwork | undefined;
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'metal-pxe-unit-'));
    net = await createPxeTestNetwork(`${process.pid}u`);
  }, { timeout: 60_000 });
  after(async () => {
    await net?.remove();
    rmSync(work, { recursive: true, force: true });
  }, { timeout: 60_000 });

  test('the unit grants CAP_NET_BIND_SERVICE alone, and lets the role read interface addresses (netlink)', () => {
    assert.deepEqual(unitCapabilities(UNIT), ['CAP_NET_BIND_SERVICE']);
    const text = readFileSync(new URL(`../../deploy/systemd/${UNIT}`, import.meta.url), 'utf8');
    assert.match(text, /^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$/m);
    assert.match(text, /^User=metal$/m, 'not root');
    assert.match(text, /^RestrictAddressFamilies=.*\bAF_NETLINK\b/m, 'os.networkInterfaces() (getifaddrs) asks the kernel over netlink');
  });

  test('an unprivileged user with that capability binds 67, 69 and 4011 and serves iPXE over TFTP', { timeout: 90_000 }, async () => {
    const pxe = await startPxeRole(net!.pxeNs, { iface: net!.bridge, ipxeDir: IPXE_DIR, bootUrl: `http://${NETWORK.server}:8081`, dataDir: unprivilegedDir(work, 'with'), runAs: unitPrivileges(UNIT) });
    try {
      const sockets = inNamespace(net!.pxeNs, ['ss', '-H', '-uln']);
      assert.equal(sockets.status, 0, sockets.stderr);
      const ports = new Set([...sockets.stdout.toString().matchAll(/:(\d+)\s/g)].map((m) => Number(m[1])));
      for (const port of [67, 69, 4011]) assert.ok(ports.has(port), `UDP ${port} bound: ${sockets.stdout.toString()}`);
      const tftp = inNamespace(net!.pxeNs, ['curl', '-sS', '--max-time', '20', `tftp://${NETWORK.server}/undionly.kpxe`]);
      assert.equal(tftp.status, 0, `${tftp.stderr}\n${pxe.output().slice(-2000)}`);
      assert.ok(tftp.stdout.equals(readFileSync(join(IPXE_DIR, 'undionly.kpxe'))), 'the file served is the file in METAL_IPXE_DIR');
      // The process that did it: the unprivileged user, with CAP_NET_BIND_SERVICE (bit 10) its only capability.
      const started = pxe.output().split('\n').find((l) => l.includes('"metal: starting"'));
      assert.ok(started, pxe.output());
      const status = readFileSync(`/proc/${(JSON.parse(started) as { pid: number }).pid}/status`, 'utf8');
      assert.match(status, new RegExp(`^Uid:\\s+${UNPRIVILEGED.uid}\\s+${UNPRIVILEGED.uid}\\s`, 'm'));
      assert.match(status, /^CapEff:\s+0*400$/m);
    } finally {
      await pxe.stop();
    }
  });

  test('as the Kubernetes pxe pod runs it (components/pxe-host-network): uid 0 with NET_BIND_SERVICE alone', { timeout: 90_000 }, async () => {
    const pod = parse(readFileSync(new URL('../../deploy/kubernetes/components/pxe-host-network/pxe.yaml', import.meta.url), 'utf8')) as {
      spec: { template: { spec: { containers: Array<{ securityContext: { runAsUser: number; capabilities: { drop: string[]; add: string[] } } }> } } };
    };
    const { securityContext } = pod.spec.template.spec.containers[0]!;
    assert.equal(securityContext.runAsUser, 0);
    assert.deepEqual(securityContext.capabilities.drop, ['ALL']);
    const runAs = dropPrivileges({ uid: 0, gid: 0, capabilities: securityContext.capabilities.add });
    // The pod's data directory is an emptyDir, made by the kubelet and writable by it (root without
    // CAP_DAC_OVERRIDE writes only where its own permissions allow).
    const podDir = join(work, 'pod');
    mkdirSync(podDir, { mode: 0o777 });
    chmodSync(podDir, 0o777);
    const pxe = await startPxeRole(net!.pxeNs, { iface: net!.bridge, ipxeDir: IPXE_DIR, bootUrl: `http://${NETWORK.server}:8081`, dataDir: podDir, runAs });
    try {
      const tftp = inNamespace(net!.pxeNs, ['curl', '-sS', '--max-time', '20', `tftp://${NETWORK.server}/undionly.kpxe`]);
      assert.equal(tftp.status, 0, `${tftp.stderr}\n${pxe.output().slice(-2000)}`);
      const started = pxe.output().split('\n').find((l) => l.includes('"metal: starting"'));
      assert.ok(started, pxe.output());
      const status = readFileSync(`/proc/${(JSON.parse(started) as { pid: number }).pid}/status`, 'utf8');
      assert.match(status, /^Uid:\s+0\s+0\s/m);
      assert.match(status, /^CapEff:\s+0*400$/m, 'root, but with NET_BIND_SERVICE its only capability');
    } finally {
      await pxe.stop();
    }
  });

  test('without the capability the role refuses to start and names the setting and the capability', { timeout: 90_000 }, async () => {
    await assert.rejects(
      startPxeRole(net!.pxeNs, { iface: net!.bridge, ipxeDir: IPXE_DIR, bootUrl: `http://${NETWORK.server}:8081`, dataDir: unprivilegedDir(work, 'without'), runAs: unitPrivileges(UNIT, []) }),
      /exited \(1\)[\s\S]*METAL_TFTP_LISTEN: not allowed to listen on 0\.0\.0\.0:69 \(ports below 1024 need root or CAP_NET_BIND_SERVICE/,
    );
  });
});
