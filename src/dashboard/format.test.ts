import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatBinaryBytes, formatCount, formatDecimalBytes, formatDuration, formatLinkSpeed, formatRelativeTime, formatTimestamp } from './format.ts';

describe('human units', () => {
  const cases: Array<[string, () => string, string]> = [
    ['memory uses binary units', () => formatBinaryBytes(412316860416), '384 GiB'],
    ['a small VM memory keeps two decimals', () => formatBinaryBytes(1020280832), '973 MiB'],
    ['memory of exactly 1 GiB', () => formatBinaryBytes(1024 ** 3), '1 GiB'],
    ['bytes below one unit stay whole', () => formatBinaryBytes(512), '512 B'],
    ['disks use decimal units as labelled', () => formatDecimalBytes(960197124096), '960 GB'],
    ['a 4 TB disk', () => formatDecimalBytes(4000787030016), '4 TB'],
    ['a fleet total in petabytes', () => formatDecimalBytes(3.64e15), '3.64 PB'],
    ['missing size is a dash', () => formatDecimalBytes(null), '—'],
    ['negative size is a dash', () => formatBinaryBytes(-1), '—'],
    ['link speed in Gb/s', () => formatLinkSpeed(25000), '25 Gb/s'],
    ['link speed below 1 Gb/s in Mb/s', () => formatLinkSpeed(100), '100 Mb/s'],
    ['2.5 Gb/s keeps its fraction', () => formatLinkSpeed(2500), '2.5 Gb/s'],
    ['unknown link speed is a dash', () => formatLinkSpeed(null), '—'],
    ['counts get thousands separators', () => formatCount(10000), '10,000'],
  ];
  for (const [name, run, expected] of cases) test(name, () => assert.equal(run(), expected));
});

describe('times', () => {
  const now = new Date('2026-11-25T12:00:00Z');
  const cases: Array<[string, string | null, string]> = [
    ['never seen', null, 'never'],
    ['seconds ago is just now', '2026-11-25T11:59:30Z', 'just now'],
    ['minutes', '2026-11-25T11:57:00Z', '3 min ago'],
    ['hours', '2026-11-25T10:00:00Z', '2 h ago'],
    ['one day is singular', '2026-11-24T11:00:00Z', '1 day ago'],
    ['days', '2026-11-20T12:00:00Z', '5 days ago'],
    ['long ago shows the date', '2026-01-02T00:00:00Z', '2026-01-02'],
    ['a clock ahead of ours', '2026-11-25T12:05:00Z', 'in the future'],
    ['garbage', 'yesterday', '—'],
  ];
  for (const [name, iso, expected] of cases) test(`relative: ${name}`, () => assert.equal(formatRelativeTime(iso, now), expected));

  test('durations: seconds, minutes, hours, running, unknown', () => {
    assert.equal(formatDuration('2026-11-25T12:00:00Z', '2026-11-25T12:00:42Z'), '42 s');
    assert.equal(formatDuration('2026-11-25T12:00:00Z', '2026-11-25T12:01:05Z'), '1 min 05 s');
    assert.equal(formatDuration('2026-11-25T10:00:00Z', '2026-11-25T11:02:00Z'), '1 h 02 min');
    assert.equal(formatDuration('2026-11-25T11:59:50Z', null, now), '10 s');
    assert.equal(formatDuration(null, null, now), '—');
    assert.equal(formatDuration('2026-11-25T12:00:10Z', '2026-11-25T12:00:00Z'), '—');
  });

  test('timestamps are UTC to the second', () => {
    assert.equal(formatTimestamp('2026-11-25T20:31:07.123Z'), '2026-11-25 20:31:07 UTC');
    assert.equal(formatTimestamp(null), '—');
  });
});
