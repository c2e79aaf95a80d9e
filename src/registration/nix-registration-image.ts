import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNixBuild, type NixpkgsPin } from '../builder/nix-build.ts';
import { readResultNixpkgs } from '../images/result-nixpkgs.ts';
import { signKernel, type SecureBootRecord } from '../images/image-publisher.ts';
import type { EfiSigner } from '../images/secure-boot.ts';

/** The project's NixOS registration image expression. */
/** The registration agent's folder, which the registration entry reads. */
const AGENT_DIR = fileURLToPath(new URL('./agent', import.meta.url));

export const DEFAULT_REGISTRATION_ENTRY = fileURLToPath(new URL('../../nix/registration.nix', import.meta.url));

/** Host name of the registration system (the `hostname` argument of the Nix entry interface). */
const REGISTRATION_HOSTNAME = 'metal-registration';
/** Passed as `serviceTag`, which the registration entry ignores: the image serves every machine. */
const REGISTRATION_TAG = 'registration';
/** The module used when no site module is given. */
const EMPTY_MODULE = '{ ... }:\n{\n}\n';

/** One kernel parameter as it may appear on an iPXE kernel line: printable, no spaces, no iPXE `${`. */
const KERNEL_PARAM_PATTERN = /^(?!.*\$\{)[\x21-\x7e]{1,512}$/;
const INIT_PATTERN = /^\/[A-Za-z0-9._+\-/]{1,1024}$/;

export interface RegistrationBuildOptions {
  /** METAL_IMAGES_DIR */
  imagesDir: string;
  /** The Nix expression; default nix/registration.nix. */
  entry?: string;
  /** An extra NixOS module for the image (firmware, drivers); default: none. */
  moduleFile?: string;
  timeoutMs: number;
  /** Receives nix-build's output as it arrives. */
  onOutput(chunk: string): void;
  /** Extra environment for nix-build (e.g. NIX_PATH). */
  env?: Record<string, string>;
  signal?: AbortSignal;
  /** METAL_NIXPKGS; undefined: `<nixpkgs>` from NIX_PATH. */
  nixpkgs?: NixpkgsPin;
  /** METAL_CONSOLE, e.g. `['tty0', 'ttyS1,115200']`. */
  consoles?: string[];
  /** Signs the kernel for Secure Boot (METAL_SECURE_BOOT_KEY). */
  signer?: EfiSigner | undefined;
}

/** What was published under `registration/`. */
export interface PublishedRegistrationImage {
  dir: string;
  init: string | undefined;
  kernelParams: string[];
  files: Record<'bzImage' | 'initrd', { size: number; sha256: string }>;
  /** The nixpkgs the image was built from, as its boot.json records it, e.g. `nixpkgs 24.05.… (revision …) from …`. */
  nixpkgs?: string;
}

/** A registration build that failed; nothing was published. */
export class RegistrationBuildError extends Error {
  constructor(message: string) {
    super(`registration image: ${message}`);
    this.name = 'RegistrationBuildError';
  }
}

/**
 * Builds the registration entry with nix-build (the builder's Nix pipeline) and publishes
 * `bzImage`, `initrd` and `boot.json` into `<imagesDir>/registration/`: copied into a staging
 * directory beside it and swapped in by rename, so a half-copied image is never served.
 */
export async function buildNixRegistrationImage(options: RegistrationBuildOptions): Promise<PublishedRegistrationImage> {
  const entry = resolve(options.entry ?? DEFAULT_REGISTRATION_ENTRY);
  const work = await mkdtemp(join(tmpdir(), 'metal-registration-build-'));
  try {
    const configurationFile = join(work, 'configuration.nix');
    if (options.moduleFile) await copyFile(resolve(options.moduleFile), configurationFile);
    else await writeFile(configurationFile, EMPTY_MODULE);
    const outLink = join(work, 'result');
    const result = await runNixBuild({
      entry,
      configurationFile,
      hostname: REGISTRATION_HOSTNAME,
      serviceTag: REGISTRATION_TAG,
      outLink,
      timeoutMs: options.timeoutMs,
      onOutput: options.onOutput,
      env: options.env,
      signal: options.signal,
      nixpkgs: options.nixpkgs,
      consoles: options.consoles,
      // The registration entry builds the agent from this project's src/ into the image.
      readablePaths: [AGENT_DIR],
    });
    if (result.outcome === 'timeout') throw new RegistrationBuildError(`nix-build ran longer than ${Math.round(options.timeoutMs / 1000)} s and was stopped`);
    if (result.outcome === 'aborted') throw new RegistrationBuildError('nix-build was stopped');
    if (result.outcome !== 'success') {
      throw new RegistrationBuildError(`nix-build ${entry} failed (exit ${result.exitCode})${result.lastError ? `: ${result.lastError}` : ''}`);
    }
    const boot = await readBootJson(join(outLink, 'boot.json'));
    const nixpkgs = await readResultNixpkgs(outLink);
    const published = await publish(options.imagesDir, outLink, boot, options.signer);
    return nixpkgs ? { ...published, nixpkgs } : published;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function readBootJson(path: string): Promise<{ init: string | undefined; kernelParams: string[] }> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new RegistrationBuildError(`the build result has no readable boot.json (${(err as Error).message})`);
  }
  const { init, kernel_params: params } = (parsed ?? {}) as { init?: unknown; kernel_params?: unknown };
  if (init !== undefined && (typeof init !== 'string' || !INIT_PATTERN.test(init))) {
    throw new RegistrationBuildError(`boot.json init ${JSON.stringify(init)} is not an absolute store path`);
  }
  if (!Array.isArray(params) || params.some((p) => typeof p !== 'string' || !KERNEL_PARAM_PATTERN.test(p))) {
    throw new RegistrationBuildError(`boot.json kernel_params must be a list of kernel parameters without spaces; got ${JSON.stringify(params)}`);
  }
  return { init, kernelParams: params as string[] };
}

async function publish(imagesDir: string, result: string, boot: { init: string | undefined; kernelParams: string[] }, signer: EfiSigner | undefined): Promise<PublishedRegistrationImage> {
  await mkdir(imagesDir, { recursive: true });
  const dir = join(imagesDir, 'registration');
  const suffix = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const staging = join(imagesDir, `.tmp-registration-new-${suffix}`);
  const retired = join(imagesDir, `.tmp-registration-old-${suffix}`);
  await mkdir(staging);
  try {
    const files = {} as PublishedRegistrationImage['files'];
    let secureBoot: SecureBootRecord | undefined;
    for (const name of ['bzImage', 'initrd'] as const) {
      const source = join(result, name);
      const info = await stat(source).catch(() => undefined);
      if (!info?.isFile() || info.size === 0) throw new RegistrationBuildError(`the build result has no ${name}`);
      if (name === 'bzImage' && signer) {
        const signed = await signKernel(signer, source, join(staging, name));
        files[name] = signed.file;
        secureBoot = signed.record;
        continue;
      }
      await copyFile(source, join(staging, name));
      files[name] = { size: info.size, sha256: await sha256File(join(staging, name)) };
    }
    const bootJson = { ...(boot.init ? { init: boot.init } : {}), kernel_params: boot.kernelParams, files, ...(secureBoot ? { secure_boot: secureBoot } : {}) };
    await writeFile(join(staging, 'boot.json'), `${JSON.stringify(bootJson, null, 2)}\n`);
    await rename(dir, retired).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    try {
      await rename(staging, dir);
    } catch (err) {
      await rename(retired, dir).catch(() => undefined);
      throw err;
    }
    return { dir, init: boot.init, kernelParams: boot.kernelParams, files };
  } finally {
    await rm(staging, { recursive: true, force: true });
    await rm(retired, { recursive: true, force: true });
  }
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolvePromise(hash.digest('hex')));
  });
}
