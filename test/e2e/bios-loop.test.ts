import { describe, test } from 'node:test';
import { labSkipReason } from '../../src/registration/lab/lab-requirements.ts';
import { freshSqlite } from '../support/databases.ts';
import { runWholeLoop } from './support/enrollment-loop.ts';
import { startLabServer } from './support/lab-server.ts';

const skip = labSkipReason({ nix: true });

describe('a machine nobody registered, on SQLite, legacy BIOS', { skip }, () => {
  test('PXE-boots, enrolls with its hardware, is configured and built, and boots its own image', { timeout: 600_000 }, async () => {
    const lab = await startLabServer(freshSqlite());
    try {
      await runWholeLoop(
        lab,
        'bios-sqlite',
        { serial: 'E2EBIOS01', cpus: 2, memoryMb: 768, diskGb: 3, manufacturer: 'Dell Inc.', product: 'PowerEdge R740', mac: '52:54:00:e2:e0:01' },
        'web-01',
      );
    } finally {
      await lab.stop();
    }
  });
});
