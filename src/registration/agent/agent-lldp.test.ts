import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findExecutable } from '../../builder/nix-build.ts';
import type { AddressInfo } from 'node:net';
import { createTestContext } from '../../../test/support/context.ts';
import { freshSqlite } from '../../../test/support/databases.ts';
import { pollUntil } from '../../../test/support/poll.ts';
import { HardwareSection } from '../../dashboard/pages/hardware-section.tsx';
import { buildBootServer } from '../../server/roles.ts';
import { copyFixture, findBusybox, makeBusyboxPath, removeDir, runAgent, writeFile } from './agent-runner.ts';

/**
 * The agent against a real lldpd: two network namespaces joined by a veth pair, one lldpd in each. The
 * "switch" announces a name, a port id and a port description; the agent, given the other lldpd's
 * `lldpctl`, must report them for the NIC of the fixture tree with the same name as the veth end.
 */

const SBIN_PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;

function skipReason(): string | undefined {
  const reasons: string[] = [];
  for (const tool of ['lldpd', 'lldpctl', 'ip', 'busybox']) if (!findExecutable(tool, SBIN_PATH)) reasons.push(`no ${tool}`);
  if (reasons.length === 0 && process.getuid?.() !== 0) reasons.push('not root (network namespaces)');
  if (reasons.length === 0) {
    const probe = `metal-lldp-probe-${process.pid}`;
    const made = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8', timeout: 10_000 });
    spawnSync('ip', ['netns', 'del', probe], { timeout: 10_000 });
    if (made.status !== 0) reasons.push(`network namespaces unavailable (${made.stderr.trim()})`);
  }
  if (reasons.length === 0) return undefined;
  const reason = `${reasons.join('; ')} (apt-get install lldpd iproute2 busybox-static; run as root)`;
  if (process.env.CI === 'true') throw new Error(`required in CI: ${reason}`);
  console.warn(`\n*** SKIPPING the agent's LLDP test against a real lldpd: ${reason} ***\n`);
  return reason;
}
const skip = skipReason();

describe('registration agent and a real lldpd (a veth pair between two network namespaces)', { skip }, () => {
  const id = `${process.pid}`;
  const switchNs = `metal-lldp-sw-${id}`;
  const hostNs = `metal-lldp-host-${id}`;
  const work = mkdtempSync(join(tmpdir(), 'metal-lldp-'));
  const daemons: ChildProcess[] = [];
  const dirs: string[] = [work];
  let switchMac = '';
  let logs = '';

  const ip = (...args: string[]) => {
    const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, `ip ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const lldpd = (ns: string, socket: string, iface: string, config?: string) => {
    // -d: in the foreground; -u: its own control socket; -I: only this interface; -O: configured before it sends.
    const child = spawn('ip', ['netns', 'exec', ns, findExecutable('lldpd', SBIN_PATH)!, '-d', '-u', socket, '-I', iface, ...(config ? ['-O', config] : [])], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
    daemons.push(child);
    return child;
  };

  before(() => {
    // lldpd's unprivileged half (user _lldpd) opens the control sockets in here.
    chmodSync(work, 0o755);
    ip('netns', 'add', switchNs);
    ip('netns', 'add', hostNs);
    // Both ends are made inside their namespaces: no name here can clash with this machine's own interfaces.
    ip('link', 'add', 'name', 'swp7', 'netns', switchNs, 'type', 'veth', 'peer', 'name', 'eno1', 'netns', hostNs);
    ip('-n', switchNs, 'link', 'set', 'swp7', 'up');
    ip('-n', hostNs, 'link', 'set', 'eno1', 'up');
    switchMac = (JSON.parse(ip('-j', '-n', switchNs, 'link', 'show', 'swp7')) as Array<{ address: string }>)[0]!.address;
    // Configured from a file, lldpd sends its first frame one tx-interval after it starts (30 s by
    // default); a real switch answers a new neighbour at once. 1 s here.
    const config = join(work, 'switch.conf');
    writeFile(
      config,
      ['configure system hostname leaf-r12-a', 'configure system description "Arista Networks EOS"', 'configure lldp portidsubtype ifname', 'configure lldp tx-interval 1', 'configure ports swp7 lldp portdescription "r12-u07 eno1"', ''].join('\n'),
    );
    lldpd(switchNs, join(work, 'switch.sock'), 'swp7', config);
    lldpd(hostNs, join(work, 'host.sock'), 'eno1');
  });

  after(async () => {
    // SIGTERM: lldpd then stops its unprivileged half too; SIGKILL after 5 s.
    await Promise.all(
      daemons.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
    spawnSync('ip', ['netns', 'del', switchNs], { timeout: 10_000 });
    spawnSync('ip', ['netns', 'del', hostNs], { timeout: 10_000 });
    dirs.forEach(removeDir);
  });

  test('the NIC cabled to the switch reports its name, port id and description; the NIC without link reports none', { timeout: 60_000 }, async () => {
    const busybox = findBusybox()!;
    const bbPath = makeBusyboxPath(busybox);
    dirs.push(bbPath);
    // The Dell tree's eno1 has link: it is the host end of the veth pair here.
    const root = copyFixture('dell-r740');
    dirs.push(root);
    const cmdline = (url: string) => writeFile(join(root, 'proc', 'cmdline'), `initrd=initrd enrollment_url=${url}\n`);
    const lldpctl = join(root, 'tools', 'lldpctl');
    writeFile(lldpctl, `#!/bin/sh\nexec '${findExecutable('lldpctl', SBIN_PATH)!}' -u '${join(work, 'host.sock')}' "$@"\n`);
    chmodSync(lldpctl, 0o755);
    // lldpd answers on its socket once it has started (the image orders the agent after lldpd.service).
    await pollUntil('lldpd\'s control socket', () => existsSync(join(work, 'host.sock')), { timeoutMs: 20_000 });
    // The agent asks until eno1 has heard its switch: lldpd's first frames go out as it starts.
    const run = await runAgent({ busybox, root, path: [join(root, 'tools'), bbPath], args: ['--print'], env: { METAL_AGENT_LLDP_WAIT: '30' }, timeoutMs: 50_000 });
    assert.equal(run.code, 0, run.stderr);
    const nics = JSON.parse(run.stdout).hardware.nics as Array<{ name: string; lldp?: Record<string, unknown> }>;
    const eno1 = nics.find((n) => n.name === 'eno1');
    assert.ok(eno1?.lldp, `eno1 heard no switch; lldpd said:\n${logs.slice(-3000)}`);
    assert.deepEqual(eno1?.lldp && { ...eno1.lldp, management_address: undefined }, {
      chassis_id: switchMac,
      chassis_id_type: 'mac',
      system_name: 'leaf-r12-a',
      system_description: 'Arista Networks EOS',
      port_id: 'swp7',
      port_id_type: 'ifname',
      port_description: 'r12-u07 eno1',
      management_address: undefined,
    });
    assert.equal(nics.find((n) => n.name === 'eno2')?.lldp, undefined, 'eno2 is not cabled');

    // Enrolled for real: a rule on the switch's name gives the machine its rack, and its page says
    // where eno1 is cabled.
    const t = await createTestContext(freshSqlite());
    const app = await buildBootServer(t.ctx);
    try {
      await t.ctx.rules.create({ name: 'rack-r12', match: { switch: 'leaf-r12-*', switch_port: 'swp?' }, set: { labels: { rack: 'r12' } } }, { kind: 'user', name: 'admin' });
      await app.listen({ host: '127.0.0.1', port: 0 });
      cmdline(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/api/v1/enroll`);
      const enrolled = await runAgent({ busybox, root, path: [join(root, 'tools'), bbPath], env: { METAL_AGENT_TIMEOUT: '20' }, timeoutMs: 50_000 });
      assert.equal(enrolled.code, 0, enrolled.stdout + enrolled.stderr);
      const machine = await t.ctx.machines.get('7XK4Q53');
      assert.deepEqual(machine.labels, { rack: 'r12' });
      const page = String(HardwareSection({ hardware: machine.hardware }));
      assert.match(page, /<td>leaf-r12-a swp7 \(r12-u07 eno1\)<\/td>/);
    } finally {
      await app.close();
      await t.close();
    }
  });
});
