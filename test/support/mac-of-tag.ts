import { createHash } from 'node:crypto';

/** A MAC of the QEMU range that is the same for one tag and (practically always) differs between tags. */
export function macOfTag(serviceTag: string): string {
  const bytes = createHash('sha256').update(serviceTag).digest().subarray(0, 3);
  return `52:54:00:${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
}
