import { createHash } from 'node:crypto';
import fc from 'fast-check';

/**
 * Generators of hostile input for the suites in test/hostile/. Every run is deterministic: each suite
 * passes a fixed seed; METAL_HOSTILE_RUNS multiplies the number of runs for a deeper local search.
 */

/** Runs of a property: `base` times METAL_HOSTILE_RUNS (default 1). */
export function runs(base: number): number {
  const factor = Number(process.env.METAL_HOSTILE_RUNS ?? 1);
  return Math.max(1, Math.round(base * (Number.isFinite(factor) && factor > 0 ? factor : 1)));
}

/** Strings known to have broken parsers, scripts, paths, SQL and HTML somewhere. */
export const NASTY_STRINGS = [
  '',
  ' ',
  '.',
  '..',
  '../../etc/passwd',
  '..%2f..%2fetc%2fpasswd',
  '%00',
  '\u0000',
  'a\u0000b',
  '${serial}',
  '${net0/mac}',
  '$' + '{uuid}',
  '|| shell',
  '&& reboot',
  'a b',
  'ok\nchain http://203.0.113.1/x',
  'ok\r\nX-Injected: 1',
  '#!ipxe',
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  "' OR 1=1 --",
  '__proto__',
  'constructor',
  'prototype',
  '0',
  '001',
  '1e3',
  '-1',
  '0x10',
  '9'.repeat(30),
  'A'.repeat(65),
  'A'.repeat(5000),
  'é',
  '\u202e',
  '\ud800',
  '😀',
  'To Be Filled By O.E.M.',
  '00000000-0000-0000-0000-000000000000',
  '52:54:00:12:34:56',
  'NaN',
  'Infinity',
  'null',
  'true',
  '[]',
  '{}',
];

/** Any string: random (ASCII, binary, graphemes), tag-shaped, or one of NASTY_STRINGS. */
export function hostileString(maxLength = 80): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constantFrom(...NASTY_STRINGS),
    fc.string({ maxLength }),
    fc.string({ unit: 'binary', maxLength }),
    fc.string({ unit: 'grapheme', maxLength }),
    fc.stringMatching(/^[A-Za-z0-9._-]{1,70}$/),
  );
}

/** A value of any JSON type, hostile strings included. */
export function hostileJson(maxDepth = 4): fc.Arbitrary<unknown> {
  return fc.oneof(
    { depthSize: 'small' },
    fc.jsonValue({ maxDepth }),
    hostileString(),
    fc.constantFrom(null, true, false, 0, -1, 1e308, -1e308, 2 ** 53 + 2, 0.5, Number.MAX_SAFE_INTEGER),
    fc.array(hostileString(), { maxLength: 5 }),
    fc.dictionary(hostileString(20), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 }),
  );
}

/** `{"x":{"x":…}}` `depth` levels deep, as JSON text. */
export function nestedJson(depth: number, open = '{"x":', close = '}'): string {
  return open.repeat(depth) + '1' + close.repeat(depth);
}

/** A MAC derived from the tag: one tag, one MAC; different tags, different MACs. */
export function macFor(tag: string): string {
  const h = createHash('sha256').update(tag).digest();
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** A service tag that enrollment accepts. */
export const validTag: fc.Arbitrary<string> = fc.stringMatching(/^[A-Z][A-Z0-9]{5,11}$/);

/** A hardware document: realistic with hostile field values, random JSON, or near and past each limit. */
export function hostileHardware(): fc.Arbitrary<unknown> {
  const realistic = fc.record(
    {
      manufacturer: hostileJson(1),
      model: hostileString(300),
      cpu: fc.oneof(fc.record({ model: hostileString(), cores: hostileJson(1), threads: fc.integer() }, { requiredKeys: [] }), hostileJson(2)),
      memory: fc.oneof(fc.record({ total_bytes: hostileJson(1), dimms: fc.array(fc.dictionary(hostileString(10), hostileJson(1), { maxKeys: 4 }), { maxLength: 8 }) }, { requiredKeys: [] }), hostileJson(2)),
      disks: fc.oneof(fc.array(fc.record({ name: hostileString(), size_bytes: hostileJson(1), model: hostileString(), rotational: hostileJson(1) }, { requiredKeys: [] }), { maxLength: 12 }), hostileJson(2)),
      nics: fc.array(
        fc.record(
          {
            name: hostileString(),
            mac: hostileString(),
            speed_mbps: hostileJson(1),
            link: hostileJson(1),
            // What a switch announces over LLDP reaches the rules, the search, events and pages.
            lldp: fc.oneof(fc.record({ system_name: hostileString(300), chassis_id: hostileJson(1), port_id: hostileString(), port_description: hostileString(), vlan_id: hostileJson(1) }, { requiredKeys: [] }), hostileJson(2)),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 6 },
      ),
      extra: hostileJson(3),
    },
    { requiredKeys: [] },
  );
  const nearLimits = fc.oneof(
    fc.integer({ min: 10, max: 20 }).map((depth) => {
      let v: unknown = 'leaf';
      for (let i = 0; i < depth; i++) v = { d: v };
      return { deep: v };
    }),
    fc.integer({ min: 1020, max: 1030 }).map((n) => ({ sensors: Array.from({ length: n }, (_, i) => i) })),
    fc.integer({ min: 4090, max: 4100 }).map((n) => ({ notes: 'n'.repeat(n) })),
    fc.integer({ min: 2040, max: 2050 }).map((n) => ({ notes: 'é'.repeat(n) })),
    fc.integer({ min: 60, max: 70 }).map((n) => ({ chunks: Array.from({ length: n }, () => 'c'.repeat(4000)) })),
  );
  return fc.oneof(realistic, nearLimits, hostileJson(5));
}

/** Percent-encodes every byte of the UTF-8 form that is not unreserved (lone surrogates included). */
export function pct(value: string): string {
  let out = '';
  for (const b of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9._~-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
