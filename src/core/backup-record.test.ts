import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBackupRecord, parseBackupRecord } from './backup-record.ts';

test('a backup record reads back as written; anything else is no record', () => {
  const at = new Date('2026-11-30T03:04:05.678Z');
  assert.deepEqual(parseBackupRecord(formatBackupRecord({ at, rows: 42 })), { at, rows: 42 });
  for (const value of [undefined, '', 'not json', 'null', '[]', '{}', '{"at":3}', '{"at":"yesterday"}', '{"at":{"toString":"x"}}']) {
    assert.equal(parseBackupRecord(value), undefined, String(value));
  }
  assert.deepEqual(parseBackupRecord('{"at":"2026-11-30T03:04:05.678Z","rows":"many"}'), { at, rows: 0 });
});
