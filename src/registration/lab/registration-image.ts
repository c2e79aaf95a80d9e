import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assembleLabInitrd, INITRD_FILES_DIR } from './initrd.ts';
import { findLabHost, type LabHost } from './lab-host.ts';
import { signKernel } from '../../images/image-publisher.ts';
import type { EfiSigner } from '../../images/secure-boot.ts';

/** The registration agent shipped with the project. */
export const DEFAULT_AGENT_FILE = new URL('../agent/metal-agent.sh', import.meta.url).pathname;

/** Kernel parameters of the lab registration image (the boot server appends `enrollment_url=`). */
export const REGISTRATION_KERNEL_PARAMS = ['console=ttyS0', 'panic=-1'] as const;

/** What `buildRegistrationImage` published. */
export interface RegistrationImage {
  /** e.g. `/var/lib/metal/images/registration` */
  dir: string;
  kernelVersion: string;
  files: Record<'bzImage' | 'initrd', { size: number; sha256: string }>;
}

/** Where to publish the registration image and what goes into it. */
export interface RegistrationImageOptions {
  /** METAL_IMAGES_DIR */
  imagesDir: string;
  /** The agent script to run; default: the project's agent. */
  agentFile?: string;
  host?: LabHost;
  /** Signs the kernel for Secure Boot (METAL_SECURE_BOOT_KEY). */
  signer?: EfiSigner | undefined;
}

/**
 * Builds the lab registration image (cloud kernel + busybox initrd running the agent) and publishes it
 * as `registration/{bzImage,initrd,boot.json}`: assembled in a sibling directory, then swapped in by
 * rename, so a machine never gets a kernel and an initrd from two different runs.
 */
export async function buildRegistrationImage(options: RegistrationImageOptions): Promise<RegistrationImage> {
  const host = options.host ?? findLabHost();
  const agentFile = options.agentFile ?? DEFAULT_AGENT_FILE;
  let agent: Buffer;
  try {
    agent = await readFile(agentFile);
  } catch (err) {
    throw new Error(`lab: cannot read the registration agent ${agentFile}: ${(err as Error).message}`);
  }
  const init = await readFile(`${INITRD_FILES_DIR}registration-init.sh`, 'utf8');
  const initrd = await assembleLabInitrd(host, init, [{ path: '/usr/bin/metal-agent', data: agent, mode: 0o755 }]);

  await mkdir(options.imagesDir, { recursive: true });
  const dir = join(options.imagesDir, 'registration');
  const suffix = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const staging = join(options.imagesDir, `.registration-new-${suffix}`);
  const retired = join(options.imagesDir, `.registration-old-${suffix}`);
  await mkdir(staging);
  try {
    const signed = options.signer ? await signKernel(options.signer, host.kernel, join(staging, 'bzImage')) : undefined;
    if (!signed) await copyFile(host.kernel, join(staging, 'bzImage'));
    await writeFile(join(staging, 'initrd'), initrd);
    const files = {
      bzImage: signed?.file ?? (await describe(join(staging, 'bzImage'))),
      initrd: describeBuffer(initrd),
    };
    const bootJson = { kernel_params: [...REGISTRATION_KERNEL_PARAMS], files, ...(signed ? { secure_boot: signed.record } : {}) };
    await writeFile(join(staging, 'boot.json'), `${JSON.stringify(bootJson, null, 2)}\n`);
    await swapDirectory(staging, dir, retired);
    return { dir, kernelVersion: host.kernelVersion, files };
  } finally {
    await rm(staging, { recursive: true, force: true });
    await rm(retired, { recursive: true, force: true });
  }
}

async function swapDirectory(staging: string, dir: string, retired: string): Promise<void> {
  try {
    await rename(dir, retired);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await rename(staging, dir);
}

async function describe(path: string): Promise<{ size: number; sha256: string }> {
  return describeBuffer(await readFile(path));
}

function describeBuffer(data: Buffer): { size: number; sha256: string } {
  return { size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}
