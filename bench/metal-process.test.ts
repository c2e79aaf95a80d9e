import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { residentBytes, sampleResidentMemory, startMetal } from './metal-process.ts';

const dir = mkdtempSync(join(tmpdir(), 'metal-bench-process-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('startMetal', () => {
  it('runs `metal boot` as a child on a loopback port, measures its memory, and stops it', async () => {
    const metal = await startMetal({ args: ['boot'], env: { METAL_DATA_DIR: dir, METAL_BOOT_URL: 'http://127.0.0.1:8081' } });
    try {
      assert.match(metal.addresses.boot ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal((await fetch(`${metal.addresses.boot}/healthz`)).status, 200);
      const stop = sampleResidentMemory(metal.pid, 10);
      assert.ok((residentBytes(metal.pid) ?? 0) > 10 * 1024 * 1024, 'a Node process has more than 10 MiB resident');
      const { peak, samples } = stop();
      assert.ok(samples.length >= 2 && peak >= Math.min(...samples));
    } finally {
      await metal.stop();
    }
    assert.equal(existsSync(`/proc/${metal.pid}`), false);
    assert.equal(residentBytes(metal.pid), undefined);
  });

  it('fails with the server’s own message when it cannot start', async () => {
    await assert.rejects(
      startMetal({ args: ['boot'], env: { METAL_DATA_DIR: dir, METAL_BOOT_LISTEN: 'not-an-address' } }),
      /exited with \d+ before it was ready:[\s\S]*METAL_BOOT_LISTEN/,
    );
  });
});
