import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, link, lstat, mkdir, open, readFile, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { parseBootManifest } from './boot-manifest.ts';
import { sanitizeResultNixpkgs, type ResultNixpkgs } from './result-nixpkgs.ts';
import type { ImageLayout } from './image-layout.ts';
import { SigningError, type EfiSigner } from './secure-boot.ts';

/** The files every image holds besides boot.json. */
export const IMAGE_FILES = ['bzImage', 'initrd'] as const;
export type ImageFile = (typeof IMAGE_FILES)[number];

export interface FileRecord {
  size: number;
  /** Lower-case hex. */
  sha256: string;
}

/** boot.json as published: what the boot server reads, plus the size and digest of each file. */
export interface PublishedBootJson {
  init: string;
  kernel_params: string[];
  files: Record<ImageFile, FileRecord>;
  /** The nixpkgs the entry says the image was built from (source, sha256, version, revision), when it says. */
  nixpkgs?: ResultNixpkgs;
  /** The certificate the kernel was signed for (METAL_SECURE_BOOT_CERT); absent when unsigned. */
  secure_boot?: SecureBootRecord;
}

/** Which certificate a published kernel's Secure Boot signature belongs to. */
export interface SecureBootRecord {
  /** SHA-256 of the certificate (DER), lower-case hex. */
  cert_sha256: string;
  /** e.g. `CN=Example Secure Boot db` */
  subject: string;
}

/** A build result that cannot be published; the message is one line naming what is wrong. */
export class ImageResultError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageResultError';
  }
}

export interface PublishRequest {
  buildId: number;
  /** nix-build's result directory (usually a store path). */
  resultDir: string;
  /** An earlier published build of the same store path whose files can be linked instead of copied. */
  reuseBuildId?: number;
  /** Kernel parameters added after the result's own (a profile's), e.g. `['console=ttyS1,115200']` */
  extraKernelParams?: readonly string[];
  /** Signs the kernel for Secure Boot (METAL_SECURE_BOOT_KEY); unset: published as built. */
  signer?: EfiSigner | undefined;
}

export interface PublishOutcome {
  bootJson: PublishedBootJson;
  /** The build whose files were linked, when nothing was copied. */
  reusedFrom?: number;
}

/** Checks that a result holds bzImage, initrd and a boot.json with `init` and `kernel_params`. */
export async function checkBuildResult(resultDir: string): Promise<{ init: string; kernel_params: string[]; nixpkgs?: ResultNixpkgs }> {
  for (const name of IMAGE_FILES) {
    const st = await statOrUndefined(join(resultDir, name));
    if (!st) throw new ImageResultError(`the build result has no ${name} (expected ${join(resultDir, name)})`);
    if (!st.isFile()) throw new ImageResultError(`the build result's ${name} is not a regular file`);
    if (st.size === 0) throw new ImageResultError(`the build result's ${name} is empty`);
  }
  let text: string;
  try {
    text = await readFile(join(resultDir, 'boot.json'), 'utf8');
  } catch {
    throw new ImageResultError(`the build result has no boot.json (expected ${join(resultDir, 'boot.json')})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ImageResultError("the build result's boot.json is not valid JSON");
  }
  const kernelParams = (value as { kernel_params?: unknown }).kernel_params;
  if (!Array.isArray(kernelParams)) throw new ImageResultError("the build result's boot.json has no kernel_params list");
  const parsed = parseBootManifest(value, true);
  if (!parsed.ok) throw new ImageResultError(`the build result's ${parsed.reason}`);
  const nixpkgs = sanitizeResultNixpkgs((value as { nixpkgs?: unknown }).nixpkgs);
  return { init: parsed.manifest.init!, kernel_params: parsed.manifest.kernelParams, ...(nixpkgs ? { nixpkgs } : {}) };
}

/**
 * Publishes a build result as `builds/<id>/`: files are copied (or linked from an earlier build of the
 * same store path) into a staging directory, boot.json with sizes and sha256 is written, everything is
 * flushed, and the directory is renamed into place. A crash leaves only a `.tmp-` directory behind.
 */
export async function publishBuildImage(layout: ImageLayout, req: PublishRequest): Promise<PublishOutcome> {
  const manifest = await withExtraKernelParams(await checkBuildResult(req.resultDir), req.extraKernelParams ?? []);
  await mkdir(layout.buildsDir, { recursive: true });
  await removeStagingOfBuild(layout, req.buildId);
  const staging = layout.stagingBuildDir(req.buildId);
  await mkdir(staging);
  try {
    let files: Record<ImageFile, FileRecord> | undefined;
    let reusedFrom: number | undefined;
    if (req.reuseBuildId !== undefined) {
      files = await linkFromEarlierBuild(layout, req.reuseBuildId, staging);
      if (files) reusedFrom = req.reuseBuildId;
    }
    files ??= await copyResultFiles(req.resultDir, staging);
    // Signed from the result's own kernel, never from a linked copy another build already signed.
    const secureBoot = req.signer ? await signKernel(req.signer, join(req.resultDir, 'bzImage'), join(staging, 'bzImage')) : undefined;
    if (secureBoot) files.bzImage = secureBoot.file;
    const bootJson: PublishedBootJson = {
      init: manifest.init,
      kernel_params: manifest.kernel_params,
      files,
      ...(manifest.nixpkgs ? { nixpkgs: manifest.nixpkgs } : {}),
      ...(secureBoot ? { secure_boot: secureBoot.record } : {}),
    };
    await writeDurably(join(staging, 'boot.json'), `${JSON.stringify(bootJson, null, 2)}\n`);
    await syncPath(staging);
    const final = layout.buildDir(req.buildId);
    // A directory left by an earlier attempt of this same build was never served (the build never succeeded).
    await rm(final, { recursive: true, force: true });
    await rename(staging, final);
    await syncPath(layout.buildsDir);
    return { bootJson, ...(reusedFrom !== undefined ? { reusedFrom } : {}) };
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}

/** The result's manifest with a profile's kernel parameters appended, checked by the boot manifest's rules. */
function withExtraKernelParams<M extends { init: string; kernel_params: string[] }>(manifest: M, extra: readonly string[]): M {
  if (extra.length === 0) return manifest;
  const params = [...manifest.kernel_params, ...extra.filter((p) => !manifest.kernel_params.includes(p))];
  const checked = parseBootManifest({ init: manifest.init, kernel_params: params }, true);
  if (!checked.ok) throw new ImageResultError(`the profile's kernel parameters cannot be used: ${checked.reason}`);
  return { ...manifest, kernel_params: checked.manifest.kernelParams };
}

/**
 * Writes a Secure Boot signed copy of `kernel` to `to` (replacing what is there, a hard link
 * included), read-only and flushed; returns its size and digest and the certificate it was signed for.
 */
export async function signKernel(signer: EfiSigner, kernel: string, to: string): Promise<{ file: FileRecord; record: SecureBootRecord }> {
  try {
    await signer.sign(kernel, to);
  } catch (err) {
    if (err instanceof SigningError) throw new ImageResultError(`the kernel cannot be signed for Secure Boot: ${err.message}`);
    throw err;
  }
  await chmod(to, 0o444);
  await syncPath(to);
  return { file: await hashFile(to), record: { cert_sha256: signer.certSha256, subject: signer.subject } };
}

/** Points `machines/<tag>` at `builds/<id>` (or removes it for null) with one atomic rename. */
export async function pointMachineAt(layout: ImageLayout, serviceTag: string, buildId: number | null): Promise<void> {
  const target = layout.machineLink(serviceTag);
  if (buildId === null) {
    await rm(target, { force: true });
    return;
  }
  await mkdir(layout.machinesDir, { recursive: true });
  const temp = layout.stagingMachineLink(serviceTag);
  await symlink(join('..', 'builds', String(buildId)), temp);
  try {
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await syncPath(layout.machinesDir);
}

/** Removes a build's published directory (a build that was cancelled after its files were placed). */
export async function removeBuildImage(layout: ImageLayout, buildId: number): Promise<void> {
  await rm(layout.buildDir(buildId), { recursive: true, force: true });
}

/**
 * Removes `.tmp-` staging directories and links under builds/ and machines/ last changed more than
 * `olderThanMs` ago: what publications interrupted by a crash left behind. Returns how many.
 */
export async function removeStaleStaging(layout: ImageLayout, olderThanMs: number): Promise<number> {
  let removed = 0;
  const cutoff = Date.now() - olderThanMs;
  for (const dir of [layout.buildsDir, layout.machinesDir]) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!name.startsWith('.tmp-')) continue;
      const path = join(dir, name);
      const st = await lstat(path).catch(() => undefined);
      if (!st || st.mtimeMs > cutoff) continue;
      await rm(path, { recursive: true, force: true });
      removed++;
    }
  }
  return removed;
}

/** Reads a published build's boot.json and checks each file's size and sha256 against it. */
export async function verifyBuildImage(dir: string): Promise<PublishedBootJson> {
  const bootJson = JSON.parse(await readFile(join(dir, 'boot.json'), 'utf8')) as PublishedBootJson;
  for (const name of IMAGE_FILES) {
    const expected = bootJson.files?.[name];
    if (!expected) throw new ImageResultError(`${dir}/boot.json records no ${name}`);
    const actual = await hashFile(join(dir, name));
    if (actual.size !== expected.size || actual.sha256 !== expected.sha256) {
      throw new ImageResultError(`${dir}/${name} does not match boot.json (${actual.size} bytes, sha256 ${actual.sha256})`);
    }
  }
  return bootJson;
}

async function linkFromEarlierBuild(layout: ImageLayout, earlierId: number, staging: string): Promise<Record<ImageFile, FileRecord> | undefined> {
  const earlierDir = layout.buildDir(earlierId);
  try {
    const earlier = JSON.parse(await readFile(join(earlierDir, 'boot.json'), 'utf8')) as PublishedBootJson;
    const files = {} as Record<ImageFile, FileRecord>;
    for (const name of IMAGE_FILES) {
      const record = earlier.files?.[name];
      const st = await lstat(join(earlierDir, name));
      if (!record || st.size !== record.size) return undefined;
      await link(join(earlierDir, name), join(staging, name));
      files[name] = { size: record.size, sha256: record.sha256 };
    }
    return files;
  } catch {
    // The earlier build's files are gone or on another file system: copy instead.
    for (const name of IMAGE_FILES) await rm(join(staging, name), { force: true });
    return undefined;
  }
}

async function copyResultFiles(resultDir: string, staging: string): Promise<Record<ImageFile, FileRecord>> {
  const files = {} as Record<ImageFile, FileRecord>;
  for (const name of IMAGE_FILES) files[name] = await copyWithDigest(join(resultDir, name), join(staging, name));
  return files;
}

/** Streams a file to its destination, hashing on the way, then flushes it to disk. */
async function copyWithDigest(from: string, to: string): Promise<FileRecord> {
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  await pipeline(createReadStream(from), tap, createWriteStream(to, { mode: 0o644 }));
  await chmod(to, 0o444);
  await syncPath(to);
  return { size, sha256: hash.digest('hex') };
}

async function hashFile(path: string): Promise<FileRecord> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { size, sha256: hash.digest('hex') };
}

async function writeDurably(path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: 0o444 });
  await syncPath(path);
}

async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function removeStagingOfBuild(layout: ImageLayout, buildId: number): Promise<void> {
  const prefix = `.tmp-${buildId}-`;
  for (const name of await readdir(layout.buildsDir)) {
    if (name.startsWith(prefix)) await rm(join(layout.buildsDir, basename(name)), { recursive: true, force: true });
  }
}

async function statOrUndefined(path: string) {
  try {
    return await stat(path);
  } catch {
    return undefined;
  }
}
