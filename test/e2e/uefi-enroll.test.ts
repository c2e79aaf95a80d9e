import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { labSkipReason } from '../../src/registration/lab/lab-requirements.ts';
import { freshSqlite } from '../support/databases.ts';
import { bootUnknownMachine } from './support/enrollment-loop.ts';
import { startLabServer } from './support/lab-server.ts';

const skip = labSkipReason({ uefi: true });

describe('a machine nobody registered, on SQLite, UEFI (OVMF + snponly.efi)', { skip }, () => {
  test('PXE-boots the registration image through iPXE under UEFI and enrolls with its hardware', { timeout: 600_000 }, async () => {
    const lab = await startLabServer(freshSqlite());
    try {
      const { machine } = await bootUnknownMachine(lab, 'uefi-sqlite', {
        serial: 'E2EUEFI01',
        uefi: true,
        cpus: 2,
        memoryMb: 1024,
        diskGb: 2,
        manufacturer: 'HPE',
        product: 'ProLiant DL360 Gen10',
        uuid: '30363150-3334-4d32-3238-343630383531',
      });
      assert.equal(machine.hardware.uuid, '30363150-3334-4d32-3238-343630383531');
    } finally {
      await lab.stop();
    }
  });
});
