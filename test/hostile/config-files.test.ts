import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import fc from 'fast-check';
import { buildApiServer } from '../../src/server/roles.ts';
import { configFileNameProblem, MAX_CONFIG_FILES } from '../../src/core/config-files.ts';
import { createTestContext, enrollmentPayload, type TestContext } from '../support/context.ts';
import { testDatabaseKinds } from '../support/databases.ts';
import { hostileString, macFor, runs } from '../support/hostile.ts';
import { rowCounts } from '../support/row-counts.ts';

/**
 * Configuration maps (`nixos_files`) from the API and the dashboard form with hostile file names and
 * texts: a 4xx naming the file for every refusal, never a 5xx, and nothing changed (no event, the
 * machine's configuration as it was); an accepted map reads back as sent, with allowed names only.
 */

const operator = { 'x-test-role': 'operator' };
const form = { 'content-type': 'application/x-www-form-urlencoded' };
const TAG = 'CFGHOSTILE1';
const GOOD = { 'configuration.nix': '{ ... }: { imports = [ ./hardware.nix ]; }\n', 'hardware.nix': '{ ... }: { }\n' };

/** Named refusals: the map, and what the error message must say. */
const REFUSED: Array<[string, unknown, RegExp]> = [
  ['a parent folder', { ...GOOD, '../escape.nix': 'x' }, /"\.\.\/escape\.nix" is not allowed/],
  ['a parent folder, two levels', { ...GOOD, '../../etc/passwd.nix': 'x' }, /"\.\.\/\.\.\/etc\/passwd\.nix" is not allowed/],
  ['a parent folder inside', { ...GOOD, 'modules/../../x.nix': 'x' }, /"modules\/\.\.\/\.\.\/x\.nix" is not allowed/],
  ['"..", bare', { ...GOOD, '..': 'x' }, /"\.\." is not allowed/],
  ['an absolute path', { ...GOOD, '/etc/nixos/configuration.nix': 'x' }, /"\/etc\/nixos\/configuration\.nix" is not allowed: absolute/],
  ['two folders deep', { ...GOOD, 'a/b/c.nix': 'x' }, /"a\/b\/c\.nix" is not allowed: at most one folder deep/],
  ['a hidden file', { ...GOOD, '.envrc.nix': 'x' }, /"\.envrc\.nix" is not allowed/],
  ['a backslash', { ...GOOD, '..\\x.nix': 'x' }, /is not allowed/],
  ['a NUL in the name', { ...GOOD, 'a\u0000.nix': 'x' }, /is not allowed/],
  ['a newline in the name', { ...GOOD, 'a\n.nix': 'x' }, /is not allowed/],
  ['an extension not on the list', { ...GOOD, 'run.py': 'x' }, /"run\.py" is not allowed: the name must end in one of/],
  ['a NUL in the text', { ...GOOD, 'hardware.nix': 'a\u0000b' }, /"hardware\.nix" contains a NUL byte/],
  ['a number as text', { ...GOOD, 'hardware.nix': 5 }, /hardware\.nix/],
  ['no configuration.nix', { 'hardware.nix': 'x' }, /must contain configuration\.nix/],
  ['too many files', Object.fromEntries([...Object.entries(GOOD), ...Array.from({ length: MAX_CONFIG_FILES }, (_, i) => [`f${i}.nix`, ''])]), /64/],
  ['too large in all', { 'configuration.nix': 'x'.repeat(200 * 1024), 'hardware.nix': 'y'.repeat(100 * 1024) }, /bytes in all; at most 262144/],
  ['a file that is also a folder', { ...GOOD, 'hardware.nix/x.nix': 'x' }, /"hardware\.nix" is both a file and a folder/],
  ['an array', ['configuration.nix'], /nixos_files/],
  ['a string', 'configuration.nix', /nixos_files/],
];

for (const kind of await testDatabaseKinds()) {
  describe(`hostile configuration files on ${kind.name}`, { timeout: 120_000 }, () => {
    let t: TestContext;
    let api: FastifyInstance;
    before(async () => {
      t = await createTestContext(kind.fresh(), { METAL_ENROLL_RATE: '0' });
      api = await buildApiServer(t.ctx);
      assert.equal((await api.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload(TAG, { mac_address: macFor(TAG) }) })).statusCode, 201);
      const put = await api.inject({ method: 'PUT', url: `/api/v1/machines/${TAG}`, headers: operator, payload: { hostname: 'cfg-h', nixos_files: GOOD } });
      assert.equal(put.statusCode, 200, put.body);
    });
    after(async () => {
      await api.close();
      await t.close();
    });

    const stored = async () => {
      const m = (await api.inject({ url: `/api/v1/machines/${TAG}`, headers: operator })).json<{ nixos_config: string; nixos_files: Record<string, string>; updated_at: string }>();
      return { nixos_config: m.nixos_config, nixos_files: m.nixos_files, updated_at: m.updated_at };
    };

    for (const [name, files, message] of REFUSED) {
      test(`${name}: 400 naming the problem, nothing changed`, async () => {
        const before = [await rowCounts(t.ctx), await stored()];
        const r = await api.inject({ method: 'PUT', url: `/api/v1/machines/${TAG}`, headers: operator, payload: { hostname: 'renamed', nixos_files: files } });
        assert.equal(r.statusCode, 400, r.body.slice(0, 300));
        const error = r.json<{ error: { code: string; message: string } }>().error;
        assert.equal(error.code, 'invalid_input');
        assert.match(error.message, message);
        assert.deepEqual([await rowCounts(t.ctx), await stored()], before);
      });
    }

    test('nixos_config and nixos_files that disagree: 400, nothing changed', async () => {
      const before = await stored();
      const r = await api.inject({ method: 'PUT', url: `/api/v1/machines/${TAG}`, headers: operator, payload: { nixos_config: 'other', nixos_files: GOOD } });
      assert.equal(r.statusCode, 400);
      assert.match(r.json<{ error: { message: string } }>().error.message, /disagree/);
      assert.deepEqual(await stored(), before);
    });

    test('generated maps: no 5xx; refused ones change nothing; accepted ones read back as sent, with allowed names only', async () => {
      const name = fc.oneof(hostileString(40), fc.stringMatching(/^[A-Za-z0-9._/-]{1,20}\.(nix|json|sh|py)$/), fc.constantFrom('hardware.nix', 'modules/a.nix', '../a.nix', '/a.nix', 'a/../b.nix'));
      const text = fc.oneof(hostileString(200), fc.string({ maxLength: 50 }));
      const map = fc.tuple(fc.dictionary(name, text, { maxKeys: 6 }), fc.boolean(), text).map(([files, entry, entryText]) => (entry ? { ...files, 'configuration.nix': entryText } : files));
      await fc.assert(
        fc.asyncProperty(map, async (files) => {
          const before = [await rowCounts(t.ctx), await stored()];
          const r = await api.inject({ method: 'PUT', url: `/api/v1/machines/${TAG}`, headers: { ...operator, 'content-type': 'application/json' }, payload: JSON.stringify({ nixos_files: files }) });
          assert.ok(r.statusCode < 500, `${r.statusCode} ${r.body.slice(0, 200)}`);
          if (r.statusCode >= 400) {
            assert.equal(typeof r.json<{ error: { code: string } }>().error.code, 'string');
            assert.deepEqual([await rowCounts(t.ctx), await stored()], before, `a refused map changed something: ${JSON.stringify(files).slice(0, 200)}`);
            return;
          }
          const saved = r.json<{ nixos_files: Record<string, string> }>().nixos_files;
          assert.deepEqual(Object.keys(saved).sort(), Object.keys(files).sort());
          for (const [n, v] of Object.entries(saved)) {
            assert.equal(configFileNameProblem(n), undefined, `accepted a bad name ${JSON.stringify(n)}`);
            assert.equal(v, files[n]);
          }
        }),
        { seed: 0x9e4e_0c0f, numRuns: runs(kind.name === 'sqlite' ? 200 : 80) },
      );
    });

    test('the dashboard form: hostile file names are refused on the page, nothing changed', async () => {
      await api.inject({ method: 'PUT', url: `/api/v1/machines/${TAG}`, headers: operator, payload: { nixos_files: GOOD } });
      for (const bad of ['../escape.nix', '/etc/x.nix', 'a/b/c.nix', '<script>alert(1)</script>.nix', 'a\u0000.nix']) {
        const before = [await rowCounts(t.ctx), await stored()];
        const body = new URLSearchParams({ hostname: 'cfg-h', description: '', nixos_config: GOOD['configuration.nix'], file_name_1: bad, file_text_1: 'x' }).toString();
        const r = await api.inject({ method: 'POST', url: `/machines/${TAG}`, headers: { ...operator, ...form }, payload: body });
        assert.equal(r.statusCode, 400, `${bad}: ${r.statusCode}`);
        assert.ok(!r.body.includes('<script>alert(1)</script>'), 'the name is escaped on the page');
        assert.match(r.body, /is not allowed/);
        assert.deepEqual([await rowCounts(t.ctx), await stored()], before, bad);
      }
    });
  });
}
