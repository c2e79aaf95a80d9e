import { describe, test } from 'node:test';
import { labSkipReason } from '../../src/registration/lab/lab-requirements.ts';
import { freshPostgres, isPostgresAvailable } from '../support/databases.ts';
import { runWholeLoop } from './support/enrollment-loop.ts';
import { startLabServer } from './support/lab-server.ts';

const skip = labSkipReason({ nix: true }) ?? ((await isPostgresAvailable()) ? undefined : 'PostgreSQL unreachable');

describe('a machine nobody registered, on PostgreSQL, legacy BIOS', { skip }, () => {
  test('PXE-boots, enrolls, is configured; booted again before its build, it waits and boots the image once published', { timeout: 600_000 }, async () => {
    const lab = await startLabServer(freshPostgres());
    try {
      await runWholeLoop(
        lab,
        'bios-postgres',
        { serial: 'E2EPG01', cpus: 1, memoryMb: 512, diskGb: 2, manufacturer: 'Supermicro', product: 'SYS-1029P-WTR' },
        'db-01',
        { bootBeforeBuild: true },
      );
    } finally {
      await lab.stop();
    }
  });
});
