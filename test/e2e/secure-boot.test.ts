import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { labSkipReason } from '../../src/registration/lab/lab-requirements.ts';
import { freshSqlite } from '../support/databases.ts';
import { signingSkipReason, snakeoilKeys } from '../support/secure-boot.ts';
import { verifiedBy } from '../../src/images/secure-boot.ts';
import { runWholeLoop } from './support/enrollment-loop.ts';
import { startLabServer } from './support/lab-server.ts';
import { bootVm, plainConsole } from './support/lab-vm.ts';

// UEFI machines that enforce Secure Boot and trust one key: OVMF with Debian's snakeoil variables
// (PK, KEK and db hold the snakeoil certificate). The server signs with that key.
const skip = labSkipReason({ uefi: true, nix: true }) ?? signingSkipReason({ snakeoil: true });

describe('Secure Boot (OVMF enforcing it, trusting only the site key)', { skip }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'metal-e2e-sb-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the whole loop: signed iPXE, the signed registration kernel, enrollment, then its own image signed by the builder', { timeout: 900_000 }, async () => {
    const keys = snakeoilKeys(dir);
    const lab = await startLabServer(freshSqlite(), { env: { METAL_SECURE_BOOT_KEY: keys.key, METAL_SECURE_BOOT_CERT: keys.cert } });
    try {
      // What a firmware that checks the network boot program gets: iPXE signed with the site key.
      const ipxe = join(dir, 'snponly.efi');
      writeFileSync(ipxe, Buffer.from(await (await fetch(`http://127.0.0.1:${lab.bootPort}/ipxe/snponly.efi`)).arrayBuffer()));
      assert.equal(await verifiedBy(ipxe, keys.cert), true, 'the boot server hands out a signed iPXE');
      const registration = JSON.parse(readFileSync(join(lab.server.ctx.config.imagesDir, 'registration', 'boot.json'), 'utf8'));
      assert.match(registration.secure_boot?.subject ?? '', /snakeoil/i, 'the registration kernel is signed');

      await runWholeLoop(lab, 'secure-boot', { serial: 'E2ESB01', secureBoot: true, cpus: 2, memoryMb: 1024, diskGb: 1 }, 'sb-web-01', {
        eachBoot: (boot) => assert.match(plainConsole(boot.console).join('\n'), /Secure boot enabled/, 'the kernel ran under Secure Boot'),
      });
      const machine = await lab.api('GET', '/api/v1/machines/E2ESB01');
      const build = await lab.api('GET', `/api/v1/builds/${machine.body.last_build_id}`);
      assert.match(build.body.log_output, /the kernel is signed for Secure Boot by .*snakeoil/i);
    } finally {
      await lab.stop();
    }
  });

  test('a server that does not sign: the firmware refuses its kernel, which never starts, and nothing enrolls', { timeout: 600_000 }, async () => {
    const lab = await startLabServer(freshSqlite());
    try {
      // iPXE retries a kernel it could not start every 5 s; two refusals are enough.
      const refused = await bootVm('secure-boot-unsigned', { serial: 'E2ESB02', secureBoot: true, bootPort: lab.bootPort }, { timeoutMs: 300_000, stopWhen: /Exec format error[^]*Exec format error/ });
      const lines = plainConsole(refused.console).join('\n');
      assert.match(lines, /registration\/bzImage\.\.\. ok\nCould not select: Exec format error/, 'iPXE fetched the kernel and the firmware refused to run it');
      assert.doesNotMatch(lines, /Linux version/, 'the kernel never started');
      assert.equal((await lab.api('GET', '/api/v1/machines/E2ESB02')).status, 404);
    } finally {
      await lab.stop();
    }
  });
});
