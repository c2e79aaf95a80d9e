import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageStore } from '../core/image-store.ts';
import { assertServiceTag } from '../core/validation.ts';

/**
 * The image storage layout under METAL_IMAGES_DIR:
 *   registration/{bzImage,initrd,boot.json}
 *   builds/<build id>/{bzImage,initrd,boot.json}   immutable once published
 *   machines/<service tag> -> ../builds/<build id>  replaced atomically
 */
export class ImageLayout implements ImageStore {
  constructor(readonly root: string) {}

  get registrationDir(): string {
    return join(this.root, 'registration');
  }

  buildDir(buildId: number): string {
    if (!Number.isSafeInteger(buildId) || buildId < 1) throw new Error(`images: bad build id ${buildId}`);
    return join(this.root, 'builds', String(buildId));
  }

  machineLink(serviceTag: string): string {
    return join(this.root, 'machines', assertServiceTag(serviceTag));
  }

  async removeMachineImages(serviceTag: string, buildIds: number[]): Promise<void> {
    await rm(this.machineLink(serviceTag), { force: true });
    for (const id of buildIds) await rm(this.buildDir(id), { recursive: true, force: true });
  }
}
