import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageStore } from '../core/ports.ts';
import { assertServiceTag } from '../core/validation.ts';
import { pointMachineAt, removeBuildImage } from './image-publisher.ts';

/**
 * The image storage layout under METAL_IMAGES_DIR:
 *   registration/{bzImage,initrd,boot.json}
 *   builds/<build id>/{bzImage,initrd,boot.json}   immutable once published
 *   machines/<service tag> -> ../builds/<build id>  replaced atomically
 * Names starting with `.tmp-` are work in progress and never served.
 */
export class ImageLayout implements ImageStore {
  constructor(readonly root: string) {}

  get registrationDir(): string {
    return join(this.root, 'registration');
  }

  get buildsDir(): string {
    return join(this.root, 'builds');
  }

  get machinesDir(): string {
    return join(this.root, 'machines');
  }

  buildDir(buildId: number): string {
    return join(this.buildsDir, String(assertBuildId(buildId)));
  }

  /** A fresh staging directory name for a build, beside its final place so rename is atomic. */
  stagingBuildDir(buildId: number): string {
    return join(this.buildsDir, `.tmp-${assertBuildId(buildId)}-${randomBytes(6).toString('hex')}`);
  }

  machineLink(serviceTag: string): string {
    return join(this.machinesDir, assertServiceTag(serviceTag));
  }

  /** A fresh temporary link name for a machine, renamed over machineLink() to swap atomically. */
  stagingMachineLink(serviceTag: string): string {
    return join(this.machinesDir, `.tmp-${assertServiceTag(serviceTag)}-${randomBytes(6).toString('hex')}`);
  }

  pointMachineAt(serviceTag: string, buildId: number | null): Promise<void> {
    return pointMachineAt(this, serviceTag, buildId);
  }

  removeBuildImage(buildId: number): Promise<void> {
    return removeBuildImage(this, buildId);
  }

  async publishedBuildIds(): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(this.buildsDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names.filter((n) => /^[1-9][0-9]{0,15}$/.test(n)).map(Number).filter(Number.isSafeInteger);
  }

  async removeMachineImages(serviceTag: string, buildIds: number[]): Promise<void> {
    await rm(this.machineLink(serviceTag), { force: true });
    for (const id of buildIds) await rm(this.buildDir(id), { recursive: true, force: true });
  }
}

function assertBuildId(buildId: number): number {
  if (!Number.isSafeInteger(buildId) || buildId < 1) throw new Error(`images: bad build id ${buildId}`);
  return buildId;
}
