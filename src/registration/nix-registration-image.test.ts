import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { findExecutable, OFFLINE_NIX_CONFIG, parseNixFile } from '../builder/nix-build.ts';
import { AGENT_SCRIPT_PATH } from './agent/agent-runner.ts';
import { buildNixRegistrationImage, DEFAULT_REGISTRATION_ENTRY, RegistrationBuildError } from './nix-registration-image.ts';

const STUB_NIXPKGS = fileURLToPath(new URL('./fixtures/stub-nixpkgs', import.meta.url));
const METAL_BIN = fileURLToPath(new URL('../../bin/metal.js', import.meta.url));
const env = { NIX_PATH: `nixpkgs=${STUB_NIXPKGS}`, NIX_CONFIG: process.env.NIX_CONFIG ?? OFFLINE_NIX_CONFIG };

function haveNix(): boolean {
  if (findExecutable('nix-build') && findExecutable('nix-instantiate')) return true;
  if (process.env.CI === 'true') throw new Error('nix-build is required in CI (apt-get install nix-bin)');
  console.warn('\n*** SKIPPING registration image build tests: nix-build is not installed ***\n');
  return false;
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('nix/registration.nix and its publication', { skip: !haveNix() }, () => {
  let dir: string;
  let imagesDir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'metal-registration-test-'));
    imagesDir = join(dir, 'images');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const entryFile = (name: string, script: string) => {
    const file = join(dir, name);
    writeFileSync(
      file,
      `{ ... }: builtins.derivation { name = "${name.replace('.nix', '')}"; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-ec" ${JSON.stringify(script).replaceAll("${", "\\${")} ]; }\n`,
    );
    return file;
  };

  test('nix/registration.nix parses', async () => {
    await parseNixFile(DEFAULT_REGISTRATION_ENTRY);
  });

  test('builds the real entry (stand-in nixpkgs) and publishes bzImage, initrd and boot.json with sizes and hashes', async () => {
    mkdirSync(join(imagesDir, 'registration'), { recursive: true });
    writeFileSync(join(imagesDir, 'registration', 'stale'), 'from an earlier image');
    const site = join(dir, 'site.nix');
    writeFileSync(site, '{ ... }: { boot.kernelParams = [ "ixgbe.allow_unsupported_sfp=1" ]; }\n');
    let output = '';
    const published = await buildNixRegistrationImage({ imagesDir, moduleFile: site, timeoutMs: 120_000, env, onOutput: (c) => (output += c) });

    const reg = join(imagesDir, 'registration');
    assert.equal(published.dir, reg);
    assert.deepEqual(readdirSync(reg).sort(), ['boot.json', 'bzImage', 'initrd'], 'the old directory was replaced whole');
    assert.deepEqual(readdirSync(imagesDir), ['registration'], 'no staging directories left behind');
    const bzImage = readFileSync(join(reg, 'bzImage'));
    assert.equal(bzImage.toString(), 'STUB-KERNEL\n');
    const bootJson = JSON.parse(readFileSync(join(reg, 'boot.json'), 'utf8'));
    assert.deepEqual(bootJson.kernel_params, ['console=tty0', 'console=ttyS0,115200', 'console=ttyS1,115200', 'panic=30', 'ixgbe.allow_unsupported_sfp=1', 'loglevel=4']);
    assert.match(bootJson.init, /^\/nix\/store\/[a-z0-9]{32}-stub-nixos-system-metal-registration\/init$/);
    assert.deepEqual(bootJson.files.bzImage, { size: bzImage.length, sha256: sha256(bzImage) });
    assert.deepEqual(bootJson.files.initrd, { size: 12, sha256: sha256(Buffer.from('STUB-INITRD\n')) });
    assert.match(output, /metal-registration-image/);

    // The stand-in system's init records the agent service: the project's agent, the tools on its PATH.
    const [execStart, servicePath] = readFileSync(bootJson.init, 'utf8').split('\n');
    const agentInStore = /^\/bin\/sh (\/nix\/store\/[a-z0-9]{32}-metal-agent\.sh)$/.exec(execStart!)?.[1];
    assert.ok(agentInStore, execStart);
    assert.deepEqual(readFileSync(agentInStore), readFileSync(AGENT_SCRIPT_PATH));
    for (const tool of ['dmidecode', 'util-linux', 'ethtool', 'pciutils', 'jq', 'curl', 'ipmitool', 'smartmontools', 'kmod', 'lldpd', 'systemd']) assert.ok(servicePath!.split(':').includes(`/stub/${tool}`), tool);
    const facts = JSON.parse(readFileSync(join(dirname(bootJson.init), 'facts.json'), 'utf8'));
    assert.equal(facts.lldpd, true, 'lldpd runs in the registration image, for the agent to ask which switch port each NIC is on');
  });

  test('a failing entry reports Nix’s error and leaves the published image as it was', async () => {
    const before = readFileSync(join(imagesDir, 'registration', 'boot.json'), 'utf8');
    const broken = join(dir, 'broken.nix');
    writeFileSync(broken, '{ ... }: throw "no registration today"\n');
    await assert.rejects(
      buildNixRegistrationImage({ imagesDir, entry: broken, timeoutMs: 60_000, env, onOutput: () => {} }),
      (err: Error) => err instanceof RegistrationBuildError && /nix-build .*broken\.nix failed \(exit 1\): error: no registration today/.test(err.message),
    );
    assert.equal(readFileSync(join(imagesDir, 'registration', 'boot.json'), 'utf8'), before);
  });

  const badResults: Array<[string, string, RegExp]> = [
    ['a kernel parameter with a space', `mkdir $out; echo k > $out/bzImage; echo i > $out/initrd; echo '{"kernel_params":["quiet splash"]}' > $out/boot.json`, /kernel_params must be a list of kernel parameters without spaces/],
    ['an iPXE expansion in a parameter', `mkdir $out; echo k > $out/bzImage; echo i > $out/initrd; echo '{"kernel_params":["x=\${serial}"]}' > $out/boot.json`, /kernel_params must be/],
    ['a relative init', `mkdir $out; echo k > $out/bzImage; echo i > $out/initrd; echo '{"init":"init","kernel_params":[]}' > $out/boot.json`, /init "init" is not an absolute store path/],
    ['no initrd', `mkdir $out; echo k > $out/bzImage; echo '{"kernel_params":[]}' > $out/boot.json`, /the build result has no initrd/],
    ['no boot.json', `mkdir $out; echo k > $out/bzImage; echo i > $out/initrd`, /no readable boot\.json/],
  ];
  for (const [name, script, message] of badResults) {
    test(`a result with ${name} is refused and nothing is published`, async () => {
      const before = readFileSync(join(imagesDir, 'registration', 'boot.json'), 'utf8');
      const entry = entryFile(`bad-${name.replace(/[^a-z]+/g, '-')}.nix`, script);
      await assert.rejects(buildNixRegistrationImage({ imagesDir, entry, timeoutMs: 60_000, env, onOutput: () => {} }), message);
      assert.equal(readFileSync(join(imagesDir, 'registration', 'boot.json'), 'utf8'), before);
      assert.deepEqual(readdirSync(imagesDir), ['registration']);
    });
  }

  test('metal image build-registration: publishes into --images-dir and says what it published', async () => {
    const cliImages = join(dir, 'cli-images');
    const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [METAL_BIN, 'image', 'build-registration', '--images-dir', cliImages, '--data-dir', join(dir, 'data')],
        { env: { ...process.env, ...env, METAL_CONSOLE: 'tty0 ttyS0,115200 ttyS1,115200' }, timeout: 120_000, encoding: 'utf8' },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
      );
    });
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, new RegExp(`image: registration image published in ${cliImages}/registration\\n`));
    assert.match(run.stdout, /kernel parameters: console=tty0 console=ttyS0,115200 console=ttyS1,115200 panic=30 loglevel=4\n/);
    assert.match(run.stdout, /built with nixpkgs 24\.05\.stub \(revision 0123456789abcdef0123456789abcdef01234567\) from \S+stub-nixpkgs\n/);
    assert.deepEqual(readdirSync(join(cliImages, 'registration')).sort(), ['boot.json', 'bzImage', 'initrd']);

    const failed = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [METAL_BIN, 'image', 'build-registration', '--images-dir', cliImages, '--entry', join(dir, 'broken.nix')],
        { env: { ...process.env, ...env }, timeout: 120_000, encoding: 'utf8' },
        (err, _stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stderr }),
      );
    });
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /metal: registration image: nix-build .* failed .*no registration today; nothing was published/);
  });
});
