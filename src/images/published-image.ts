import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageLayout } from './image-layout.ts';

/** A build's published files as its boot.json describes them, with download URLs on the boot server. */
export interface PublishedImage {
  init: string | null;
  kernelParams: string[];
  files: Array<{ name: string; size: number | null; sha256: string | null; url: string }>;
  /** The certificate its kernel is signed for (METAL_SECURE_BOOT_CERT); null: not signed by metal. */
  secureBoot: { subject: string; certSha256: string } | null;
}

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const SHA256 = /^[0-9a-f]{64}$/;

/**
 * Reads builds/<id>/boot.json; null when the build published nothing (or it is unreadable). File URLs
 * are under the build's artifact URL (`<boot url>/images/builds/<image key>/`).
 */
export async function readPublishedImage(images: ImageLayout, buildId: number, artifactUrl: string | null): Promise<PublishedImage | null> {
  if (artifactUrl === null) return null;
  let raw: string;
  try {
    raw = await readFile(join(images.buildDir(buildId), 'boot.json'), 'utf8');
  } catch {
    return null;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null) return null;
  const doc = parsed as { init?: unknown; kernel_params?: unknown; files?: unknown; secure_boot?: unknown };
  const signed = (typeof doc.secure_boot === 'object' && doc.secure_boot !== null ? doc.secure_boot : {}) as { subject?: unknown; cert_sha256?: unknown };
  const files = typeof doc.files === 'object' && doc.files !== null ? (doc.files as Record<string, unknown>) : {};
  return {
    init: typeof doc.init === 'string' ? doc.init : null,
    kernelParams: Array.isArray(doc.kernel_params) ? doc.kernel_params.filter((p): p is string => typeof p === 'string') : [],
    secureBoot:
      typeof signed.subject === 'string' && typeof signed.cert_sha256 === 'string' && SHA256.test(signed.cert_sha256)
        ? { subject: signed.subject.slice(0, 256), certSha256: signed.cert_sha256 }
        : null,
    files: Object.entries(files)
      .filter(([name]) => FILE_NAME.test(name))
      .map(([name, info]) => {
        const i = (typeof info === 'object' && info !== null ? info : {}) as { size?: unknown; sha256?: unknown };
        return {
          name,
          size: typeof i.size === 'number' ? i.size : null,
          sha256: typeof i.sha256 === 'string' && SHA256.test(i.sha256) ? i.sha256 : null,
          url: `${artifactUrl.endsWith('/') ? artifactUrl : `${artifactUrl}/`}${encodeURIComponent(name)}`,
        };
      }),
  };
}
