import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { labSkipReason } from '../../src/registration/lab/lab-requirements.ts';
import { freshSqlite } from '../support/databases.ts';
import { bootUnknownMachine } from './support/enrollment-loop.ts';
import { startLabServer } from './support/lab-server.ts';
import { consoleReport } from './support/lab-vm.ts';

const skip = labSkipReason();

describe('a machine with two NICs whose second one PXE-boots, legacy BIOS', { skip }, () => {
  test('the registration script names the booting NIC and the agent reports it as primary, not the first NIC with link', { timeout: 600_000 }, async () => {
    const lab = await startLabServer(freshSqlite());
    try {
      const management = '52:54:00:e2:a0:01';
      const booting = '52:54:00:e2:b0:02';
      // eth0 is a management port with link (its own confined network, no boot ROM); eth1 boots.
      const { boot, machine } = await bootUnknownMachine(lab, 'two-nic', {
        serial: 'E2ETWONIC1',
        cpus: 1,
        memoryMb: 512,
        mac: booting,
        managementNicMac: management,
      });
      assert.equal(machine.mac_address, booting);
      const nics = machine.hardware.nics.map((n: { name: string; mac: string; link: boolean; boot?: boolean }) => [n.name, n.mac, n.link, n.boot ?? false]);
      assert.deepEqual(nics, [
        ['eth0', management, true, false],
        ['eth1', booting, true, true],
      ], 'by name alone, eth0 (up) would have been the primary NIC');
      assert.match(boot.console, /metal\.boot_mac=52:54:00:e2:b0:02/, `iPXE filled in the booting NIC\n${consoleReport(boot.console)}`);
      assert.match(boot.console, /primary MAC 52:54:00:e2:b0:02 from the NIC it booted from, eth1 \(metal\.boot_mac\)/);
      assert.match(boot.console, /enrolled; powering off \(metal\.after=poweroff\)/, 'the lab keeps poweroff');
    } finally {
      await lab.stop();
    }
  });
});
