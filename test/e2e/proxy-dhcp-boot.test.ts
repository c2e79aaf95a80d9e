import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { toolSkipReason } from '../../src/pxe/testing/tool-requirements.ts';
import { labSkipReason } from '../../src/registration/lab/lab-requirements.ts';
import { freshSqlite } from '../support/databases.ts';
import { forwardBootServer } from './support/boot-forwarder.ts';
import { VM_TIMEOUT_MS } from './support/enrollment-loop.ts';
import { startLabServer, type LabServer } from './support/lab-server.ts';
import { bootVm, consoleReport } from './support/lab-vm.ts';
import { createPxeTestNetwork, NETWORK, netnsUnavailableReason, type PxeTestNetwork } from './support/netns.ts';
import { startPxeRole, type PxeRoleProcess } from './support/pxe-role-process.ts';
import { startSiteDhcp, type SiteDhcp } from './support/site-dhcp.ts';
import { unitPrivileges, unprivilegedDir } from '../support/unit-privileges.ts';

const IPXE_DIR = '/usr/lib/ipxe';
/** The pxe role runs with what deploy/systemd/metal-pxe.service gives it. */
const PXE_UNIT = unitPrivileges('metal-pxe.service');
const BOOT_PORT = 8081;
const BOOT_URL = `http://${NETWORK.server}:${BOOT_PORT}`;

function skipReason(): string | undefined {
  const lab = labSkipReason({ uefi: true });
  if (lab) return lab;
  const tools = toolSkipReason({ ip: 'iproute2', dnsmasq: 'dnsmasq' });
  if (tools) return tools;
  const netns = netnsUnavailableReason();
  if (netns && process.env.CI === 'true') throw new Error(`required in CI: ${netns}`);
  if (netns) console.warn(`\n*** SKIPPING proxyDHCP boots: ${netns} ***\n`);
  return netns;
}
const skip = skipReason();

describe('network boot with nothing else set up: the site DHCP server has no PXE options, our proxyDHCP and TFTP run beside it', { skip }, () => {
  let workDir: string;
  let net: PxeTestNetwork | undefined;
  let lab: LabServer | undefined;
  let site: SiteDhcp | undefined;
  let pxe: PxeRoleProcess | undefined;
  let forwarder: { stop(): Promise<void> } | undefined;

  before(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'metal-e2e-pxe-'));
    net = await createPxeTestNetwork(String(process.pid));
    lab = await startLabServer(freshSqlite(), { bootUrl: BOOT_URL });
    forwarder = await forwardBootServer(net.pxeNs, NETWORK.server, BOOT_PORT, lab.bootPort, workDir);
    site = await startSiteDhcp(net.siteNs, net.siteInterface, workDir);
    // As the metal-pxe unit runs it: an unprivileged user whose one capability is CAP_NET_BIND_SERVICE.
    pxe = await startPxeRole(net.pxeNs, { iface: net.bridge, ipxeDir: IPXE_DIR, bootUrl: BOOT_URL, dataDir: unprivilegedDir(workDir, 'pxe'), runAs: PXE_UNIT });
  }, { timeout: 180_000 });

  after(async () => {
    // Each part is stopped even when another fails; the namespaces go last, whatever happened.
    const errors: unknown[] = [];
    for (const stop of [() => pxe?.stop(), () => site?.stop(), () => forwarder?.stop(), () => lab?.stop(), () => net?.remove()]) {
      try {
        await stop();
      } catch (err) {
        errors.push(err);
      }
    }
    if (workDir) rmSync(workDir, { recursive: true, force: true });
    if (errors.length) throw errors[0];
  }, { timeout: 120_000 });

  /** proxyDHCP and TFTP log lines (JSON) about one MAC or file. */
  function pxeLog(): Array<Record<string, unknown>> {
    return pxe!
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async function bootAndEnroll(name: string, input: { serial: string; uefi: boolean; mac: string; managementNicMac?: string }, options: { uefiHttpBoot?: boolean } = {}) {
    const network = { netns: net!.pxeNs, tap: net!.tap, uefiHttpBoot: options.uefiHttpBoot };
    const boot = await bootVm(name, { ...input, cpus: 2, memoryMb: 1024, diskGb: 2, manufacturer: 'Supermicro', product: 'SYS-1029P' }, { timeoutMs: VM_TIMEOUT_MS, network });
    const why = `${consoleReport(boot.console)}\n--- pxe role ---\n${pxe!.output().slice(-6000)}\n--- site DHCP ---\n${site!.output().slice(-3000)}`;
    assert.match(boot.console, /metal-agent: ENROLLED/, why);
    const m = await lab!.api('GET', `/api/v1/machines/${input.serial}`);
    assert.equal(m.status, 200, why);
    assert.equal(m.body.status, 'enrolled');
    assert.equal(m.body.mac_address, input.mac);
    assert.match(m.body.hardware.bios?.vendor ?? '', input.uefi ? /OVMF/ : /SeaBIOS/);
    // The address came from the site's server, which sent no boot file.
    assert.match(site!.output(), new RegExp(`DHCPACK\\(vsite\\) 10\\.77\\.0\\.\\d+ ${input.mac}`), why);
    assert.doesNotMatch(site!.output(), /sent size:\s*\d+ option:\s*(43|60|66|67) /, 'the site DHCP server sent no PXE option, TFTP server or boot file');
    return { boot, why };
  }

  test('UEFI (OVMF) firmware PXE: TFTP snponly.efi, then iPXE gets /boot.ipxe, then the registration image enrolls', { timeout: VM_TIMEOUT_MS + 60_000 }, async () => {
    const mac = '52:54:00:e2:f0:01';
    const { why } = await bootAndEnroll('pxe-uefi', { serial: 'E2EPXEUEFI1', uefi: true, mac });
    const log = pxeLog();
    const answers = log.filter((l) => l.mac === mac && typeof l.boot === 'string');
    assert.ok(answers.some((l) => l.boot === 'snponly.efi' && l.arch === 7), `the firmware was offered snponly.efi\n${why}`);
    assert.ok(answers.some((l) => l.boot === 'snponly.efi' && l.answer === 'ack' && l.port === 4011), `the firmware's boot-server request on port 4011 was answered\n${why}`);
    assert.ok(answers.some((l) => l.boot === `${BOOT_URL}/boot.ipxe`), `iPXE was given the boot script URL\n${why}`);
    assert.ok(log.some((l) => l.msg === 'tftp: transfer complete' && l.file === 'snponly.efi'), `snponly.efi went over our TFTP\n${why}`);
  });

  test('legacy BIOS: the NIC boot ROM (iPXE under SeaBIOS) is sent to /boot.ipxe by the proxyDHCP and enrolls, with the booting NIC as its MAC though another comes first', { timeout: VM_TIMEOUT_MS + 60_000 }, async () => {
    const mac = '52:54:00:e2:f0:02';
    // A management port before the booting one: iPXE's net0. /boot.ipxe must name the NIC it boots
    // through (${netX/mac}), and bootAndEnroll checks the machine's MAC is that one.
    const { boot, why } = await bootAndEnroll('pxe-bios', { serial: 'E2EPXEBIOS1', uefi: false, mac, managementNicMac: '52:54:00:e2:f0:12' });
    assert.match(boot.console, /metal\.boot_mac=52:54:00:e2:f0:02/, why);
    const answers = pxeLog().filter((l) => l.mac === mac && typeof l.boot === 'string');
    assert.ok(answers.some((l) => l.boot === `${BOOT_URL}/boot.ipxe` && l.arch === 0), `the BIOS client was given the boot script URL\n${why}`);
  });

  test('UEFI HTTP boot (OVMF with its PXE turned off): ipxe.efi over HTTP from /ipxe/, then /boot.ipxe, then enrolled', { timeout: VM_TIMEOUT_MS + 60_000 }, async () => {
    const mac = '52:54:00:e2:f0:03';
    const { boot, why } = await bootAndEnroll('pxe-uefi-http', { serial: 'E2EHTTPBOOT1', uefi: true, mac }, { uefiHttpBoot: true });
    assert.match(boot.console, /Start HTTP Boot over IPv4/, why);
    const answers = pxeLog().filter((l) => l.mac === mac && typeof l.boot === 'string');
    assert.ok(answers.some((l) => l.boot === `${BOOT_URL}/ipxe/ipxe.efi` && l.arch === 16 && l.vendorClass?.toString().startsWith('HTTPClient')), `HTTP boot was offered ipxe.efi over HTTP\n${why}`);
    assert.ok(answers.some((l) => l.boot === `${BOOT_URL}/boot.ipxe`), `iPXE was given the boot script URL\n${why}`);
    assert.ok(!answers.some((l) => l.boot === 'snponly.efi'), 'no firmware PXE happened');
  });
});

describe('network boot on a network with no DHCP server at all: the pxe role gives addresses too (METAL_DHCP_RANGE)', { skip }, () => {
  let workDir: string;
  let net: PxeTestNetwork | undefined;
  let lab: LabServer | undefined;
  let pxe: PxeRoleProcess | undefined;
  let forwarder: { stop(): Promise<void> } | undefined;

  before(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'metal-e2e-dhcp-'));
    net = await createPxeTestNetwork(`${process.pid}f`);
    lab = await startLabServer(freshSqlite(), { bootUrl: BOOT_URL });
    forwarder = await forwardBootServer(net.pxeNs, NETWORK.server, BOOT_PORT, lab.bootPort, workDir);
    const dhcpRange = `${NETWORK.range[0]}-${NETWORK.range[1]}`;
    pxe = await startPxeRole(net.pxeNs, { iface: net.bridge, ipxeDir: IPXE_DIR, bootUrl: BOOT_URL, dataDir: unprivilegedDir(workDir, 'pxe'), dhcpRange, runAs: PXE_UNIT });
  }, { timeout: 180_000 });

  after(async () => {
    const errors: unknown[] = [];
    for (const stop of [() => pxe?.stop(), () => forwarder?.stop(), () => lab?.stop(), () => net?.remove()]) {
      try {
        await stop();
      } catch (err) {
        errors.push(err);
      }
    }
    if (workDir) rmSync(workDir, { recursive: true, force: true });
    if (errors.length) throw errors[0];
  }, { timeout: 120_000 });

  test('UEFI firmware PXE gets an address and snponly.efi from us, iPXE and the registration image get addresses too, and it enrolls', { timeout: VM_TIMEOUT_MS + 60_000 }, async () => {
    const mac = '52:54:00:e2:f0:04';
    const boot = await bootVm('dhcp-uefi', { serial: 'E2EDHCPUEFI1', uefi: true, mac, cpus: 2, memoryMb: 1024, diskGb: 2 }, { timeoutMs: VM_TIMEOUT_MS, network: { netns: net!.pxeNs, tap: net!.tap } });
    const why = `${consoleReport(boot.console)}\n--- pxe role ---\n${pxe!.output().slice(-6000)}`;
    assert.match(boot.console, /metal-agent: ENROLLED/, why);
    const m = await lab!.api('GET', '/api/v1/machines/E2EDHCPUEFI1');
    assert.equal(m.status, 200, why);
    assert.equal(m.body.mac_address, mac);
    const log = pxe!
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.mac === mac && l.answer === 'ack');
    // (The firmware's boot-server request on port 4011 is answered without an address.)
    const addresses = new Set(log.filter((l) => l.port !== 4011).map((l) => l.address));
    assert.equal(addresses.size, 1, `one address for the machine throughout: ${[...addresses].join(', ')}\n${why}`);
    assert.match(String([...addresses][0]), /^10\.77\.0\.(1[0-4]\d|150)$/);
    assert.ok(log.some((l) => l.boot === 'snponly.efi'), `the firmware's address came with snponly.efi\n${why}`);
    assert.ok(log.some((l) => l.boot === `${BOOT_URL}/boot.ipxe`), `iPXE's address came with /boot.ipxe\n${why}`);
    assert.ok(log.some((l) => l.boot === undefined), `the registration image (a plain DHCP client) got an address without boot options\n${why}`);
  });
});
