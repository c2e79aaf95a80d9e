import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LogPrinter, colourStatus, formatBytes, formatDiskBytes, formatTable, printable, printableLog, shouldColour, statusCell } from './table.ts';

describe('tables', () => {
  test('columns are aligned on the longest cell and the last column is not padded', () => {
    assert.deepEqual(formatTable(['TAG', 'STATUS', 'NAME'], [['A', 'ready', 'x'], ['LONGER', 'enrolled', '']]), ['TAG     STATUS    NAME', 'A       ready     x', 'LONGER  enrolled']);
  });

  test('colour codes do not break alignment', () => {
    const lines = formatTable(['S', 'N'], [[statusCell('ready', true), 'a'], [statusCell('building', true), 'b']]);
    const plain = lines.map((l) => l.split('\u001b[32m').join('').split('\u001b[33m').join('').split('\u001b[0m').join(''));
    assert.deepEqual(plain, ['S         N', 'ready     a', 'building  b']);
    assert.ok(lines[1]!.startsWith('\u001b[32mready\u001b[0m'));
  });

  test('colour only on a terminal and never with NO_COLOR', () => {
    assert.equal(shouldColour({ isTTY: true }, {}), true);
    assert.equal(shouldColour({ isTTY: true }, { NO_COLOR: '1' }), false);
    assert.equal(shouldColour({ isTTY: false }, {}), false);
    assert.equal(shouldColour({}, {}), false);
    assert.equal(colourStatus('failed', false), 'failed');
    assert.equal(colourStatus('failed', true), '\u001b[31mfailed\u001b[0m');
  });

  test('server strings cannot drive the terminal', () => {
    assert.equal(printable('a\u001b[2Jb\nc\td'), 'a?[2Jb c d');
    assert.equal(printable(null), '');
    assert.equal(printableLog('building\u001b[1m bold\u001b[0m\r\nprogress\rdone\u0007\n'), 'building bold\nprogress\ndone\n');
  });

  test('a streamed log keeps escape sequences and line endings split between chunks whole', () => {
    let out = '';
    const printer = new LogPrinter((text) => (out += text));
    for (const chunk of ['one\u001b[3', '2mgreen\u001b', '[0m\r', '\ntwo\r', 'three\u001b']) printer.push(chunk);
    printer.flush();
    assert.equal(out, 'one' + 'green' + '\n' + 'two\nthree');
  });

  test('sizes in binary units', () => {
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(412316860416), '384 GiB');
    assert.equal(formatBytes(undefined), '');
    // Disks as vendors label them and as the dashboard shows them: a "1.92 TB" SSD is not "1.7 TiB".
    assert.equal(formatDiskBytes(1920383410176), '1.92 TB');
    assert.equal(formatDiskBytes(null), '');
  });
});
