import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FIXTURES, nixBuildAvailable } from '../../test/support/builder.ts';
import { chooseIsolation } from './builder.ts';
import { evaluationLimitArgs, runNixBuild } from './nix-build.ts';

// An operator's NixOS configuration is evaluated by nix-build on the builder. These attacks (run with
// the real nix-build) must fail the build with Nix's own reason, leave no trace on the host and put
// no secret in the log. The stand-in entry evaluates the configuration the way the real one does.

const hasNix = nixBuildAvailable();
const SECRET = `metal-secret-${process.pid}-do-not-print`;

describe('nix evaluation limits', { skip: !hasNix }, () => {
  let root: string;
  let secretFile: string;
  let marker: string;
  let stubNixpkgs: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'metal-nix-limits-'));
    mkdirSync(join(root, 'data'));
    secretFile = join(root, 'data', 'secret.key');
    writeFileSync(secretFile, SECRET);
    marker = join(root, 'data', 'owned');
    stubNixpkgs = join(root, 'nixpkgs');
    mkdirSync(stubNixpkgs);
    writeFileSync(join(stubNixpkgs, 'default.nix'), '{ }\n');
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  let n = 0;
  async function build(configuration: string) {
    const workspace = join(root, `ws-${++n}`);
    mkdirSync(workspace);
    writeFileSync(join(workspace, 'configuration.nix'), configuration);
    let log = '';
    const result = await runNixBuild({
      entry: FIXTURES.ok,
      configurationFile: join(workspace, 'configuration.nix'),
      hostname: `limits-${n}-${process.pid}`,
      serviceTag: 'LIMITS',
      outLink: join(workspace, 'result'),
      timeoutMs: 120_000,
      nixpkgs: { kind: 'path', path: stubNixpkgs },
      isolation: 'unsandboxed',
      onOutput: (text) => (log += text),
    });
    return { ...result, log };
  }

  const attacks: Array<[string, string, RegExp]> = [
    [
      'a derivation built during evaluation (import from derivation) to run a command',
      `{ ... }: builtins.seq (builtins.readFile (builtins.derivation { name = "own"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "id > ${'$'}out; touch MARKER; cat SECRETFILE >&2" ]; })) { }`,
      /allow-import-from-derivation/,
    ],
    ['reading the secret key by absolute path', `{ ... }: builtins.seq (builtins.readFile SECRETFILE) { }`, /forbidden in restricted mode/],
    ['reading a host file through nixpkgs and ..', `{ ... }: builtins.seq (builtins.readFile <nixpkgs/../../../../../../etc/passwd>) { }`, /forbidden in restricted mode|not allowed|does not exist/],
    ['running a program with builtins.exec', `{ ... }: builtins.seq (builtins.exec [ "/bin/sh" "-c" "touch MARKER" ]) { }`, /exec/],
    ['fetching a URL during evaluation', `{ ... }: builtins.seq (builtins.fetchurl "http://127.0.0.1:9/x") { }`, /not allowed|forbidden|restricted/],
  ];

  for (const [name, template, reason] of attacks) {
    test(`refused: ${name}`, { timeout: 180_000 }, async () => {
      const config = template.replaceAll('MARKER', marker).replaceAll('SECRETFILE', secretFile);
      const result = await build(config);
      assert.equal(result.outcome, 'failed', result.log);
      assert.match(result.lastError ?? '', reason, result.log);
      assert.equal(existsSync(marker), false, 'nothing ran on the host');
      assert.ok(!result.log.includes(SECRET), 'the secret is not in the log');
      assert.ok(!/root:x?:0:0/.test(result.log), '/etc/passwd is not in the log');
    });
  }

  test('an ordinary configuration still builds under the limits', { timeout: 180_000 }, async () => {
    const result = await build(`{ ... }: { networking.hostName = "ok-${process.pid}"; }`);
    assert.equal(result.outcome, 'success', result.log);
  });
});

describe('build isolation', () => {
  test('a host with a Nix daemon builds in its sandbox', () => {
    assert.equal(chooseIsolation({ buildUnsandboxed: false }, true), 'daemon');
    assert.equal(chooseIsolation({ buildUnsandboxed: true }, true), 'daemon');
  });

  test('without a daemon the builder refuses, naming the setting, unless it is set', () => {
    assert.throws(() => chooseIsolation({ buildUnsandboxed: false }, false), /METAL_BUILD_UNSANDBOXED=1/);
    assert.equal(chooseIsolation({ buildUnsandboxed: true }, false), 'unsandboxed');
  });

  test('the limits are on every nix-build command line, whatever the host configuration', () => {
    const args = evaluationLimitArgs({ entry: '/srv/metal/nix/netboot.nix', configurationFile: '/data/builds-work/7/configuration.nix', nixpkgs: undefined });
    const options = Object.fromEntries(args.flatMap((a, i) => (a === '--option' ? [[args[i + 1], args[i + 2]]] : [])));
    assert.deepEqual(options, {
      'restrict-eval': 'true',
      'allow-import-from-derivation': 'false',
      'allow-unsafe-native-code-during-evaluation': 'false',
      'allowed-uris': '',
    });
    assert.ok(args.includes('metal-workspace=/data/builds-work/7'));
    assert.ok(!args.some((a) => a === '/data' || a.endsWith('=/data')), 'the data directory itself is not readable');
  });
});
