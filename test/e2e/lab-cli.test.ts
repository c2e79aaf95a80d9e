import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { labSkipReason } from '../../src/registration/lab/lab-requirements.ts';
import { freshSqlite } from '../support/databases.ts';
import { runMetal } from '../support/server-process.ts';
import { consoleReport } from './support/lab-vm.ts';
import { startLabServer } from './support/lab-server.ts';

const skip = labSkipReason();

describe('metal lab boot, as docs/lab.md runs it', { skip }, () => {
  test('boots a VM whose console is shown, which enrolls and powers off; the machine is listed', { timeout: 600_000 }, async () => {
    const lab = await startLabServer(freshSqlite());
    try {
      const { code, stdout, stderr } = await runMetal(['lab', 'boot', '--serial', 'CLI001', '--cpus', '1', '--memory', '512', '--boot-port', String(lab.bootPort), '--timeout', '240']);
      assert.equal(code, 0, `${stderr}\n${consoleReport(stdout)}`);
      assert.match(stderr, /lab: booting CLI001 \(BIOS, 1 CPUs, 512 MB, MAC 52:54:00(:[0-9a-f]{2}){3}\)/);
      assert.doesNotMatch(stderr, /warning/, 'the boot server uses the lab address');
      assert.match(stderr, /lab: CLI001 powered off after \d+\.\d s/);
      assert.match(stdout, /metal-agent: ENROLLED: CLI001/, 'the serial console is shown');

      const listed = await lab.api('GET', '/api/v1/machines?search=CLI001');
      assert.equal(listed.status, 200);
      assert.deepEqual(listed.body.items.map((m: { service_tag: string; status: string }) => [m.service_tag, m.status]), [['CLI001', 'enrolled']]);
    } finally {
      await lab.stop();
    }
  });

  test('warns when no boot server answers on the port, and stops the VM at --timeout', { timeout: 120_000 }, async () => {
    const { code, stderr } = await runMetal(['lab', 'boot', '--serial', 'CLI002', '--boot-port', '1', '--timeout', '5']);
    assert.equal(code, 1);
    assert.match(stderr, /lab: warning: no boot server answers on 127\.0\.0\.1:1/);
    assert.match(stderr, /lab: CLI002 was stopped after the 5 s timeout/);
  });
});
