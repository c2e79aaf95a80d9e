import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageLayout } from './image-layout.ts';
import { readBootManifest, type BootManifest } from './boot-manifest.ts';

/** The registration image, or what is wrong with it (fixed text of ours). */
export type RegistrationImage = { ok: true; manifest: BootManifest } | { ok: false; missing: string[]; reason: string };

/** A build's image, or why it cannot be booted. */
export type BuildImage = { ok: true; manifest: BootManifest } | { ok: false; reason: string };

/** How fresh the catalog's view of the registration image must be. */
export interface ImageCatalogOptions {
  /** How long a look at the registration image is reused; 0 looks every time. */
  registrationTtlMs?: number;
}

const MAX_CACHED_BUILDS = 16384;

/**
 * Reads boot.json files for the boot server: each build's once (builds are immutable once
 * published), the registration image's at most every `registrationTtlMs`.
 */
export class ImageCatalog {
  private readonly builds = new Map<number, BootManifest>();
  private registrationCache: { at: number; value: Promise<RegistrationImage> } | undefined;
  private readonly registrationTtlMs: number;

  constructor(
    private readonly layout: ImageLayout,
    options: ImageCatalogOptions = {},
  ) {
    this.registrationTtlMs = options.registrationTtlMs ?? 2000;
  }

  registration(): Promise<RegistrationImage> {
    const now = Date.now();
    if (this.registrationCache && now - this.registrationCache.at < this.registrationTtlMs) return this.registrationCache.value;
    const value = this.lookAtRegistration();
    this.registrationCache = { at: now, value };
    return value;
  }

  async build(buildId: number): Promise<BuildImage> {
    const cached = this.builds.get(buildId);
    if (cached) return { ok: true, manifest: cached };
    const dir = this.layout.buildDir(buildId);
    const missing = await missingFiles(dir, ['bzImage', 'initrd']);
    if (missing.length > 0) return { ok: false, reason: `${missing.join(' and ')} missing in its build directory` };
    const result = await readBootManifest(join(dir, 'boot.json'), true);
    if (!result.ok) return { ok: false, reason: result.reason };
    if (this.builds.size >= MAX_CACHED_BUILDS) this.builds.delete(this.builds.keys().next().value as number);
    this.builds.set(buildId, result.manifest);
    return { ok: true, manifest: result.manifest };
  }

  private async lookAtRegistration(): Promise<RegistrationImage> {
    const dir = this.layout.registrationDir;
    const missing = await missingFiles(dir, ['bzImage', 'initrd']);
    const manifest = await readBootManifest(join(dir, 'boot.json'), false);
    if (!manifest.ok && manifest.missing) missing.push('boot.json');
    if (missing.length > 0) return { ok: false, missing, reason: `${missing.join(', ')} missing` };
    if (!manifest.ok) return { ok: false, missing: [], reason: manifest.reason };
    return { ok: true, manifest: manifest.manifest };
  }
}

async function missingFiles(dir: string, names: string[]): Promise<string[]> {
  const found = await Promise.all(
    names.map((name) =>
      stat(join(dir, name)).then(
        (s) => s.isFile(),
        () => false,
      ),
    ),
  );
  return names.filter((_, i) => !found[i]);
}
