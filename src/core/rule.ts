import { switchPorts } from './cabling.ts';
import { binaryBytes, decimalBytes } from './byte-units.ts';
import { InvalidInputError } from './errors.ts';
import { parseHostnamePattern } from './hostname-pattern.ts';
import { assertLabels, formatLabels, matchesSelector, parseSelector, type Labels } from './labels.ts';
import { assertProfileName } from './profile.ts';
import type { Hardware } from './types.ts';

/** A range of a number, both ends included, e.g. `{min: 64}` */
export interface Range {
  min?: number;
  max?: number;
}

/** What a rule matches: every given condition holds (an empty match matches every machine). */
export interface RuleMatch {
  /** Globs (`*`, `?`), case-insensitive, e.g. `Dell*` */
  manufacturer?: string;
  model?: string;
  service_tag?: string;
  /** A MAC prefix, e.g. `3c:ec:ef` */
  mac?: string;
  cpu_threads?: Range;
  memory_bytes?: Range;
  disk_count?: Range;
  /** Total bytes of all disks. */
  disk_bytes?: Range;
  /** Has at least one GPU (true) or none (false). */
  gpu?: boolean;
  /** A glob on the LLDP system name (else chassis id) of a switch one of its NICs is cabled to, e.g. `leaf-r12-*` */
  switch?: string;
  /** A glob on that NIC's switch port (LLDP port id, else port description), e.g. `Ethernet1?`; with `switch`, the same NIC's */
  switch_port?: string;
  /** A label selector, e.g. `env=prod` */
  labels?: string;
}

/** What a rule gives the machines it matches. */
export interface RuleSet {
  profile?: string;
  /** Merged into the machine's labels. */
  labels?: Labels;
  /** Overrides the profile's pattern. */
  hostname_pattern?: string;
}

/** A rule: on a machine's first enrollment the first matching enabled rule (by priority, then id) applies. */
export interface Rule {
  id: number;
  /** e.g. `dell-web` */
  name: string;
  /** Lower first, e.g. 10 before 100. */
  priority: number;
  match: RuleMatch;
  set: RuleSet;
  /** Request a build once applied. */
  build: boolean;
  enabled: boolean;
  created_at: string;
  updated_at: string;
}

/** The fields of a rule as a user sends them. */
export interface RuleFields {
  name: string;
  priority: number;
  match: RuleMatch;
  set: RuleSet;
  build: boolean;
  enabled: boolean;
}

/** What a machine is matched on: the enrollment's facts and its labels. */
export interface MatchSubject {
  service_tag: string;
  mac_address: string;
  hardware: Hardware;
  labels: Labels;
}

const RULE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const MAX_GLOB = 128;
const MATCH_KEYS = ['manufacturer', 'model', 'service_tag', 'mac', 'cpu_threads', 'memory_bytes', 'disk_count', 'disk_bytes', 'gpu', 'switch', 'switch_port', 'labels'] as const;
const SET_KEYS = ['profile', 'labels', 'hostname_pattern'] as const;

const bad = (field: string, why: string) => new InvalidInputError(`${field}: ${why}`, { field });

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function assertRange(field: string, v: unknown): Range {
  if (!isObject(v)) throw bad(field, 'must be an object {min?, max?}');
  const out: Range = {};
  for (const [k, n] of Object.entries(v)) {
    if (k !== 'min' && k !== 'max') throw bad(field, `unknown field ${JSON.stringify(k)}; use min and max`);
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw bad(`${field}.${k}`, 'must be a whole number, 0 or more');
    out[k] = n;
  }
  if (out.min === undefined && out.max === undefined) throw bad(field, 'give min, max or both');
  if (out.min !== undefined && out.max !== undefined && out.min > out.max) throw bad(field, `min ${out.min} is above max ${out.max}, so nothing would match`);
  return out;
}

function assertGlob(field: string, v: unknown): string {
  if (typeof v !== 'string' || v === '' || v.length > MAX_GLOB) throw bad(field, `must be a glob of 1 to ${MAX_GLOB} characters`);
  if ([...v].some((c) => c.charCodeAt(0) < 0x20)) throw bad(field, 'must not hold control characters');
  return v;
}

/** Checks a rule's `match`. */
export function assertRuleMatch(input: unknown): RuleMatch {
  if (input === undefined) return {};
  if (!isObject(input)) throw bad('match', 'must be an object');
  const out: RuleMatch = {};
  for (const [key, v] of Object.entries(input)) {
    const field = `match.${key}`;
    switch (key as (typeof MATCH_KEYS)[number]) {
      case 'manufacturer':
      case 'model':
      case 'service_tag':
      case 'switch':
      case 'switch_port':
        out[key as 'model'] = assertGlob(field, v);
        break;
      case 'mac':
        if (typeof v !== 'string' || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){0,5}$/.test(v)) {
          throw bad(field, 'must be a MAC prefix such as 3c:ec:ef');
        }
        out.mac = v.toLowerCase();
        break;
      case 'cpu_threads':
      case 'memory_bytes':
      case 'disk_count':
      case 'disk_bytes':
        out[key as 'cpu_threads'] = assertRange(field, v);
        break;
      case 'gpu':
        if (typeof v !== 'boolean') throw bad(field, 'must be true or false');
        out.gpu = v;
        break;
      case 'labels':
        if (typeof v !== 'string') throw bad(field, 'must be a label selector string, e.g. env=prod');
        try {
          parseSelector(v);
        } catch (err) {
          throw bad(field, (err as Error).message);
        }
        out.labels = v;
        break;
      default:
        throw bad(field, `unknown condition; use ${MATCH_KEYS.join(', ')}`);
    }
  }
  return out;
}

/** Checks a rule's `set` (the profile's existence is checked against the store by the caller). */
export function assertRuleSet(input: unknown): RuleSet {
  if (input === undefined) return {};
  if (!isObject(input)) throw bad('set', 'must be an object');
  const out: RuleSet = {};
  for (const [key, v] of Object.entries(input)) {
    switch (key as (typeof SET_KEYS)[number]) {
      case 'profile':
        try {
          out.profile = assertProfileName(v);
        } catch (err) {
          throw bad('set.profile', (err as Error).message);
        }
        break;
      case 'labels':
        out.labels = assertLabels(v);
        break;
      case 'hostname_pattern':
        out.hostname_pattern = parseHostnamePattern(v, 'set.hostname_pattern').text;
        break;
      default:
        throw bad(`set.${key}`, `unknown field; use ${SET_KEYS.join(', ')}`);
    }
  }
  return out;
}

/**
 * Checks a whole rule body: to create one (a name, and something it does), or to preview one (a
 * preview half typed in may have neither: it still says which machines the match picks).
 */
export function assertRuleFields(input: unknown, requireName = true, requireEffect = true): RuleFields {
  if (!isObject(input)) throw new InvalidInputError('a rule must be an object');
  for (const key of Object.keys(input)) {
    if (!['name', 'priority', 'match', 'set', 'build', 'enabled'].includes(key)) throw bad(key, 'unknown field; a rule has name, priority, match, set, build and enabled');
  }
  let name = '';
  if (input.name !== undefined || requireName) {
    if (typeof input.name !== 'string' || !RULE_NAME.test(input.name)) throw bad('name', 'must be a DNS label (lower-case letters, digits, inner "-", at most 63)');
    name = input.name;
  }
  const priority = input.priority ?? 100;
  if (typeof priority !== 'number' || !Number.isSafeInteger(priority) || priority < 0 || priority > 1_000_000) throw bad('priority', 'must be a whole number from 0 to 1000000');
  if (input.build !== undefined && typeof input.build !== 'boolean') throw bad('build', 'must be true or false');
  if (input.enabled !== undefined && typeof input.enabled !== 'boolean') throw bad('enabled', 'must be true or false');
  const set = assertRuleSet(input.set);
  const build = input.build === true;
  if (requireEffect && Object.keys(set).length === 0 && !build) throw bad('set', 'a rule must set a profile, labels or a hostname pattern, or build');
  return { name, priority, match: assertRuleMatch(input.match), set, build, enabled: input.enabled !== false };
}

/** `*` any run, `?` one character; everything else literal; case-insensitive. */
function globMatches(glob: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  const re = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 'is').test(value);
}

function inRange(r: Range | undefined, value: number | undefined): boolean {
  if (r === undefined) return true;
  if (value === undefined || !Number.isFinite(value)) return false;
  return (r.min === undefined || value >= r.min) && (r.max === undefined || value <= r.max);
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** True when every condition of `match` holds for the machine. */
export function ruleMatches(match: RuleMatch, m: MatchSubject): boolean {
  const hw = m.hardware;
  const disks = Array.isArray(hw.disks) ? (hw.disks as Array<Record<string, unknown>>) : [];
  const gpus = Array.isArray(hw.gpus) ? hw.gpus : [];
  const cpu = (isObject(hw.cpu) ? hw.cpu : {}) as Record<string, unknown>;
  const memory = (isObject(hw.memory) ? hw.memory : {}) as Record<string, unknown>;
  if (match.manufacturer !== undefined && !globMatches(match.manufacturer, str(hw.manufacturer))) return false;
  if (match.model !== undefined && !globMatches(match.model, str(hw.model))) return false;
  if (match.service_tag !== undefined && !globMatches(match.service_tag, m.service_tag)) return false;
  if (match.mac !== undefined && !m.mac_address.toLowerCase().startsWith(match.mac)) return false;
  if (!inRange(match.cpu_threads, num(cpu.threads))) return false;
  if (!inRange(match.memory_bytes, num(memory.total_bytes))) return false;
  if (!inRange(match.disk_count, disks.length)) return false;
  if (!inRange(match.disk_bytes, disks.reduce((sum, d) => sum + (num(d?.size_bytes) ?? 0), 0))) return false;
  if (match.gpu !== undefined && match.gpu !== gpus.length > 0) return false;
  if ((match.switch !== undefined || match.switch_port !== undefined) && !cabledTo(hw, match.switch, match.switch_port)) return false;
  if (match.labels !== undefined && !matchesSelector(m.labels, parseSelector(match.labels))) return false;
  return true;
}

/** True when one NIC's LLDP neighbour matches both globs (an absent glob matches any neighbour). */
function cabledTo(hw: Hardware, switchGlob: string | undefined, portGlob: string | undefined): boolean {
  return switchPorts(hw).some((p) => (switchGlob === undefined || globMatches(switchGlob, p.switch)) && (portGlob === undefined || globMatches(portGlob, p.port)));
}

/** The first rule that matches, in order (priority, then id); disabled rules are skipped. */
export function firstMatchingRule(rules: readonly Rule[], m: MatchSubject): Rule | undefined {
  return [...rules].filter((r) => r.enabled).sort((a, b) => a.priority - b.priority || a.id - b.id).find((r) => ruleMatches(r.match, m));
}

/** A range as a person reads it: `8-64`, `≥ 8`, `≤ 64`; `unit` formats each end. */
function describeRange(r: Range, unit: (n: number) => string = String): string {
  if (r.min !== undefined && r.max !== undefined) return r.min === r.max ? unit(r.min) : `${unit(r.min)}–${unit(r.max)}`;
  if (r.min !== undefined) return `≥ ${unit(r.min)}`;
  return r.max !== undefined ? `≤ ${unit(r.max)}` : 'any';
}

/** What a rule matches, in words: `manufacturer Dell*, CPU threads ≥ 32, GPU`; `every machine` when empty. */
export function describeRuleMatch(match: RuleMatch): string {
  const bytes = (n: number) => decimalBytes(n) ?? String(n);
  const memory = (n: number) => binaryBytes(n) ?? String(n);
  const parts = [
    match.manufacturer !== undefined && `manufacturer ${match.manufacturer}`,
    match.model !== undefined && `model ${match.model}`,
    match.service_tag !== undefined && `service tag ${match.service_tag}`,
    match.mac !== undefined && `MAC ${match.mac}…`,
    match.cpu_threads && `CPU threads ${describeRange(match.cpu_threads)}`,
    match.memory_bytes && `memory ${describeRange(match.memory_bytes, memory)}`,
    match.disk_count && `disks ${describeRange(match.disk_count)}`,
    match.disk_bytes && `disk space ${describeRange(match.disk_bytes, bytes)}`,
    match.gpu !== undefined && (match.gpu ? 'a GPU' : 'no GPU'),
    match.switch !== undefined && `switch ${match.switch}`,
    match.switch_port !== undefined && `switch port ${match.switch_port}`,
    match.labels !== undefined && `labels ${match.labels}`,
  ].filter((p): p is string => typeof p === 'string');
  return parts.length === 0 ? 'every machine' : parts.join(', ');
}

/** What a rule gives, in words: `profile web, labels role=web, hostname web-{n}`; `nothing` when empty. */
export function describeRuleSet(set: RuleSet): string {
  const labels = formatLabels(set.labels);
  const parts = [set.profile !== undefined && `profile ${set.profile}`, labels && `labels ${labels}`, set.hostname_pattern !== undefined && `hostname ${set.hostname_pattern}`].filter(
    (p): p is string => typeof p === 'string' && p !== '',
  );
  return parts.length === 0 ? 'nothing' : parts.join(', ');
}
