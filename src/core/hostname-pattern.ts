import { InvalidInputError } from './errors.ts';
import { labelKeyProblem, type Labels } from './labels.ts';
import { HOSTNAME_PATTERN } from './validation.ts';

/**
 * Hostname patterns of profiles and rules: `web-{n:03}`, `{tag}`, `db-{label.rack}-{n}`. `{n}` is the
 * smallest number not held by another machine with the same pattern (padded to a width with `{n:03}`),
 * `{tag}` the service tag lower-cased and made a DNS label, `{label.KEY}` a label's value made one too.
 */

/** The longest pattern taken. */
export const MAX_PATTERN_LENGTH = 128;
/** The largest `{n}` handed out. */
export const MAX_PATTERN_NUMBER = 9_999_999;

type Part =
  | { kind: 'text'; text: string }
  | { kind: 'n'; width: number }
  | { kind: 'tag' }
  | { kind: 'label'; key: string };

/** A checked pattern. */
export interface HostnamePattern {
  /** As written, e.g. `web-{n:03}` */
  text: string;
  parts: Part[];
  hasNumber: boolean;
}

/** What a pattern is filled from: the machine. */
export interface PatternSubject {
  serviceTag: string;
  labels: Labels;
}

const PLACEHOLDER = /\{([^{}]*)\}/g;

/** Parses and checks a pattern; InvalidInputError naming the problem (`field` is the body field). */
export function parseHostnamePattern(text: unknown, field = 'hostname_pattern'): HostnamePattern {
  const bad = (why: string) => new InvalidInputError(`${field} ${JSON.stringify(String(text).slice(0, 80))}: ${why}`, { field });
  if (typeof text !== 'string' || text === '') throw bad('must be a non-empty string');
  if (text.length > MAX_PATTERN_LENGTH) throw bad(`is longer than ${MAX_PATTERN_LENGTH} characters`);
  const parts: Part[] = [];
  let last = 0;
  for (const m of text.matchAll(PLACEHOLDER)) {
    if (m.index > last) parts.push({ kind: 'text', text: text.slice(last, m.index) });
    parts.push(placeholder(m[1]!, bad));
    last = m.index + m[0].length;
  }
  if (last < text.length) parts.push({ kind: 'text', text: text.slice(last) });
  for (const p of parts) {
    if (p.kind !== 'text') continue;
    if (/[{}]/.test(p.text)) throw bad('has an unmatched "{" or "}"');
    if (!/^[a-z0-9-]*$/.test(p.text)) throw bad(`the text ${JSON.stringify(p.text)} may hold only lower-case letters, digits and "-"`);
  }
  const numbers = parts.filter((p) => p.kind === 'n').length;
  if (numbers > 1) throw bad('has more than one {n}');
  if (numbers === 0 && !parts.some((p) => p.kind === 'tag')) {
    throw bad('has neither {n} nor {tag}, so every machine would get the same name: numbers would collide');
  }
  const pattern = { text, parts, hasNumber: numbers === 1 };
  const sample = renderParts(pattern, { serviceTag: 'a', labels: {} }, 1, () => 'a');
  if (!HOSTNAME_PATTERN.test(sample)) throw bad(`does not give a DNS label (e.g. ${JSON.stringify(sample)}): letters, digits and inner "-", at most 63`);
  return pattern;
}

function placeholder(inner: string, bad: (why: string) => InvalidInputError): Part {
  if (inner === 'n') return { kind: 'n', width: 1 };
  const width = /^n:0([1-9])$/.exec(inner);
  if (width) return { kind: 'n', width: Number(width[1]) };
  if (inner === 'tag') return { kind: 'tag' };
  if (inner.startsWith('label.')) {
    const key = inner.slice('label.'.length);
    const problem = labelKeyProblem(key);
    if (problem) throw bad(`{label.KEY}: ${problem}`);
    return { kind: 'label', key };
  }
  throw bad(`unknown placeholder {${inner}}: use {n}, {n:03}, {tag} or {label.KEY}`);
}

/** A string made a DNS label's worth of text: lower-case, other characters as "-", no edge "-". */
export function dnsLabelOf(value: string): string {
  return value
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

function renderParts(pattern: HostnamePattern, subject: PatternSubject, n: number, label: (key: string) => string): string {
  return pattern.parts
    .map((p) => {
      switch (p.kind) {
        case 'text':
          return p.text;
        case 'n':
          return String(n).padStart(p.width, '0');
        case 'tag':
          return dnsLabelOf(subject.serviceTag);
        case 'label':
          return label(p.key);
      }
    })
    .join('');
}

/** The fixed text around `{n}` for one machine (or the whole name when there is no `{n}`). */
export interface NameTemplate {
  prefix: string;
  suffix: string;
  /** Digits `{n}` is padded to; 0 when the pattern has no `{n}`. */
  width: number;
}

/** Fills everything but `{n}` for a machine; InvalidInputError when a label is missing or the tag gives nothing. */
export function nameTemplate(pattern: HostnamePattern, subject: PatternSubject): NameTemplate {
  const fill = (parts: Part[]) =>
    renderParts({ ...pattern, parts }, subject, 0, (key) => {
      const value = subject.labels[key];
      const made = value === undefined ? '' : dnsLabelOf(value);
      if (made === '') throw new InvalidInputError(`${subject.serviceTag}: hostname pattern ${pattern.text} needs label ${key}, which the machine does not have (or whose value gives no DNS text)`);
      return made;
    });
  if (pattern.parts.some((p) => p.kind === 'tag') && dnsLabelOf(subject.serviceTag) === '') {
    throw new InvalidInputError(`${subject.serviceTag}: the service tag gives no DNS text for {tag}`);
  }
  const at = pattern.parts.findIndex((p) => p.kind === 'n');
  if (at < 0) return { prefix: fill(pattern.parts), suffix: '', width: 0 };
  const n = pattern.parts[at] as { kind: 'n'; width: number };
  return { prefix: fill(pattern.parts.slice(0, at)), suffix: fill(pattern.parts.slice(at + 1)), width: n.width };
}

/** The hostname for `n` (ignored without `{n}`); InvalidInputError when it is not a DNS label. */
export function hostnameFor(template: NameTemplate, n: number): string {
  const name = template.width === 0 ? template.prefix : `${template.prefix}${String(n).padStart(template.width, '0')}${template.suffix}`;
  if (!HOSTNAME_PATTERN.test(name)) throw new InvalidInputError(`hostname ${JSON.stringify(name)} from the pattern is not a DNS label (letters, digits, inner "-", at most 63)`);
  return name;
}

/** The `{n}` of a hostname written from `template`, or undefined when it was not (e.g. `web-007` → 7). */
export function numberIn(template: NameTemplate, hostname: string): number | undefined {
  if (template.width === 0 || !hostname.startsWith(template.prefix) || !hostname.endsWith(template.suffix)) return undefined;
  const digits = hostname.slice(template.prefix.length, hostname.length - template.suffix.length);
  if (!/^\d+$/.test(digits)) return undefined;
  const n = Number(digits);
  // Only the form the pattern writes counts: `web-07` is not `web-{n:03}`'s 7.
  return String(n).padStart(template.width, '0') === digits ? n : undefined;
}

/** The candidate numbers in order: the smallest not in `held` first, up to `count` of them. */
export function freeNumbers(held: ReadonlySet<number>, count: number): number[] {
  const out: number[] = [];
  for (let n = 1; out.length < count && n <= MAX_PATTERN_NUMBER; n++) if (!held.has(n)) out.push(n);
  return out;
}
