import { InvalidInputError, DomainError } from './errors.ts';

/**
 * Bounds on untrusted JSON documents, checked without recursion: a hostile document nested thousands
 * of levels deep must be refused before anything recursive (a validator, JSON.stringify, a renderer)
 * walks it.
 */

/** How deep any JSON request body may nest (containers within containers). */
export const MAX_BODY_DEPTH = 64;

/** The limits on the `hardware` document a machine reports at enrollment. */
export const HARDWARE_LIMITS = Object.freeze({
  /** Containers within containers, `hardware` itself being level 1. */
  depth: 16,
  /** Items in any one array. */
  arrayItems: 1024,
  /** UTF-8 bytes of any one string (values and keys). */
  stringBytes: 4 * 1024,
  /** UTF-8 bytes of the whole document serialized as JSON. */
  totalBytes: 256 * 1024,
});

export type BoundLimit = 'depth' | 'array_items' | 'string_bytes' | 'total_bytes';

/** The first limit a document breaks: which, its maximum, and where (e.g. `hardware.disks[3].model`). */
export interface BoundViolation {
  limit: BoundLimit;
  max: number;
  actual: number;
  path: string;
}

export interface JsonBounds {
  depth: number;
  arrayItems?: number;
  stringBytes?: number;
}

interface Frame {
  value: unknown;
  depth: number;
  parent: Frame | undefined;
  key: string | number | undefined;
}

/**
 * Walks `value` iteratively and returns the first bound it breaks, or undefined. Containers are
 * counted as levels: `{}` is depth 1, `{"a": []}` depth 2. Scalars never add depth.
 */
export function findBoundViolation(value: unknown, root: string, bounds: JsonBounds): BoundViolation | undefined {
  const stack: Frame[] = [{ value, depth: 1, parent: undefined, key: undefined }];
  while (stack.length > 0) {
    const frame = stack.pop()!;
    const v = frame.value;
    if (typeof v === 'string') {
      const bytes = stringBytes(v, bounds.stringBytes);
      if (bounds.stringBytes !== undefined && bytes > bounds.stringBytes) {
        return { limit: 'string_bytes', max: bounds.stringBytes, actual: bytes, path: pathOf(frame, root) };
      }
      continue;
    }
    if (typeof v !== 'object' || v === null) continue;
    if (frame.depth > bounds.depth) return { limit: 'depth', max: bounds.depth, actual: frame.depth, path: pathOf(frame, root) };
    if (Array.isArray(v)) {
      if (bounds.arrayItems !== undefined && v.length > bounds.arrayItems) {
        return { limit: 'array_items', max: bounds.arrayItems, actual: v.length, path: pathOf(frame, root) };
      }
      for (let i = v.length - 1; i >= 0; i--) {
        const item: unknown = v[i];
        if ((typeof item === 'object' && item !== null) || typeof item === 'string') stack.push({ value: item, depth: frame.depth + 1, parent: frame, key: i });
      }
      continue;
    }
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      if (bounds.stringBytes !== undefined) {
        const bytes = stringBytes(key, bounds.stringBytes);
        if (bytes > bounds.stringBytes) {
          return { limit: 'string_bytes', max: bounds.stringBytes, actual: bytes, path: pathOf({ value: key, depth: frame.depth + 1, parent: frame, key: `${key.slice(0, 16)}…` }, root) };
        }
      }
      const item: unknown = (v as Record<string, unknown>)[key];
      if ((typeof item === 'object' && item !== null) || typeof item === 'string') stack.push({ value: item, depth: frame.depth + 1, parent: frame, key });
    }
  }
  return undefined;
}

/**
 * Throws a 400 when a request body nests deeper than MAX_BODY_DEPTH. Run before validation: nothing
 * recursive may touch a body before this.
 */
export function assertBodyDepth(body: unknown): void {
  if (typeof body !== 'object' || body === null) return;
  const violation = findBoundViolation(body, 'body', { depth: MAX_BODY_DEPTH });
  if (violation) {
    throw new InvalidInputError(`the request body nests deeper than ${MAX_BODY_DEPTH} levels (at ${violation.path})`, {
      limit: 'depth',
      max: MAX_BODY_DEPTH,
      path: violation.path,
    });
  }
}

/**
 * Throws when a reported hardware document breaks HARDWARE_LIMITS: 400 for its shape (depth, array
 * items, string length), 413 for its size. The message names the limit, its maximum and the path.
 * Anything that is not an object is left to schema validation.
 */
export function assertHardwareBounds(hardware: unknown): void {
  if (typeof hardware !== 'object' || hardware === null) return;
  const violation = findBoundViolation(hardware, 'hardware', {
    depth: HARDWARE_LIMITS.depth,
    arrayItems: HARDWARE_LIMITS.arrayItems,
    stringBytes: HARDWARE_LIMITS.stringBytes,
  });
  if (violation) throw hardwareError(violation);
  // Safe now: at most 16 levels deep.
  const total = Buffer.byteLength(JSON.stringify(hardware), 'utf8');
  if (total > HARDWARE_LIMITS.totalBytes) {
    throw hardwareError({ limit: 'total_bytes', max: HARDWARE_LIMITS.totalBytes, actual: total, path: 'hardware' });
  }
}

const DESCRIBE: Record<BoundLimit, (v: BoundViolation) => string> = {
  depth: (v) => `${v.path} is nested more than ${v.max} levels deep (hardware depth limit ${v.max})`,
  array_items: (v) => `${v.path} has ${v.actual} items; at most ${v.max} are allowed (hardware array limit)`,
  string_bytes: (v) => `${v.path} is ${v.actual} bytes; at most ${v.max} bytes are allowed per string (hardware string limit)`,
  total_bytes: (v) => `hardware is ${v.actual} bytes as JSON; at most ${v.max} bytes are allowed (hardware size limit)`,
};

function hardwareError(v: BoundViolation): DomainError {
  const details = { field: 'hardware', limit: v.limit, max: v.max, path: v.path };
  if (v.limit === 'total_bytes') return new DomainError('payload_too_large', DESCRIBE.total_bytes(v), details);
  return new InvalidInputError(DESCRIBE[v.limit](v), details);
}

/** UTF-8 length; strings far below the bound are not measured byte by byte. */
function stringBytes(s: string, bound: number | undefined): number {
  if (bound !== undefined && s.length * 3 <= bound) return s.length;
  return Buffer.byteLength(s, 'utf8');
}

/** `hardware.disks[3].model`, shortened in the middle when deep. */
function pathOf(frame: Frame, root: string): string {
  const parts: string[] = [];
  for (let f: Frame | undefined = frame; f && f.key !== undefined; f = f.parent) {
    parts.push(typeof f.key === 'number' ? `[${f.key}]` : /^[A-Za-z_][A-Za-z0-9_]*$/.test(f.key) ? `.${f.key}` : `[${JSON.stringify(f.key.slice(0, 32))}]`);
  }
  parts.reverse();
  const shown = parts.length > 12 ? [...parts.slice(0, 6), `…(${parts.length - 10} more)…`, ...parts.slice(-4)] : parts;
  return root + shown.join('');
}
