import { open } from 'node:fs/promises';

/** What an image's boot.json contributes to a kernel line, after validation. */
export interface BootManifest {
  /** e.g. `/nix/store/…-nixos-system-web-01/init`; absent for a registration image without one. */
  init: string | undefined;
  /** e.g. `['console=ttyS0', 'loglevel=4']` */
  kernelParams: string[];
}

/** Why a boot.json cannot be used; `reason` is fixed text of ours, never content of the file. */
export type ManifestResult = { ok: true; manifest: BootManifest } | { ok: false; missing: boolean; reason: string };

/** Larger boot.json files are refused rather than read. */
export const MAX_MANIFEST_BYTES = 64 * 1024;
const MAX_KERNEL_PARAMS = 64;

/**
 * One kernel parameter that needs no quoting in an iPXE script or on a kernel command line: no
 * whitespace, quotes, backslashes or the iPXE specials `$ { } ; & | #`.
 */
export const KERNEL_PARAM_PATTERN = /^[A-Za-z0-9._,:/=+@%~-]{1,256}$/;
/** An absolute path made of Nix store name characters. e.g. `/nix/store/abc-nixos-system-x/init` */
export const INIT_PATH_PATTERN = /^\/[A-Za-z0-9._+/-]{1,1023}$/;

/** Validates a parsed boot.json. `requireInit`: a machine image cannot boot without `init`. */
export function parseBootManifest(value: unknown, requireInit: boolean): ManifestResult {
  const fail = (reason: string): ManifestResult => ({ ok: false, missing: false, reason });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('boot.json is not a JSON object');
  const { init, kernel_params: params } = value as { init?: unknown; kernel_params?: unknown };
  if (init === undefined || init === null || init === '') {
    if (requireInit) return fail('boot.json has no init');
  } else if (typeof init !== 'string' || !INIT_PATH_PATTERN.test(init)) {
    return fail('boot.json init is not an absolute path of plain characters');
  }
  const kernelParams: string[] = [];
  if (params !== undefined && params !== null) {
    if (!Array.isArray(params)) return fail('boot.json kernel_params is not a list');
    if (params.length > MAX_KERNEL_PARAMS) return fail(`boot.json has more than ${MAX_KERNEL_PARAMS} kernel_params`);
    for (const [i, p] of params.entries()) {
      if (typeof p !== 'string' || !KERNEL_PARAM_PATTERN.test(p)) {
        return fail(`boot.json kernel_params ${i} has characters that are not allowed on a kernel line`);
      }
      if (/^(init|initrd|metal\.[a-z_]+|enrollment_url)=/.test(p)) {
        return fail(`boot.json kernel_params ${i} sets a parameter the boot server writes itself`);
      }
      kernelParams.push(p);
    }
  }
  return { ok: true, manifest: { init: typeof init === 'string' && init !== '' ? init : undefined, kernelParams } };
}

/** Reads and validates a boot.json file; a missing file is reported as such, never thrown. */
export async function readBootManifest(path: string, requireInit: boolean): Promise<ManifestResult> {
  let text: string;
  try {
    const file = await open(path, 'r');
    try {
      const { size } = await file.stat();
      if (size > MAX_MANIFEST_BYTES) return { ok: false, missing: false, reason: `boot.json is larger than ${MAX_MANIFEST_BYTES} bytes` };
      text = await file.readFile('utf8');
    } finally {
      await file.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { ok: false, missing: true, reason: 'boot.json is missing' };
    return { ok: false, missing: false, reason: 'boot.json cannot be read' };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, missing: false, reason: 'boot.json is not valid JSON' };
  }
  return parseBootManifest(parsed, requireInit);
}
