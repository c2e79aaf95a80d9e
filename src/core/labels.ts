import { InvalidInputError } from './errors.ts';

/**
 * Labels on machines (`role=web`, `rack=r12`) and the selectors that pick machines by them, with the
 * syntax and limits of Kubernetes labels and label selectors, so an operator's habits carry over:
 * https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/
 */

/** A machine's labels: key → value, e.g. `{ role: 'web', 'example.com/rack': 'r12' }` */
export type Labels = Record<string, string>;

/** At most this many labels on one machine. */
export const MAX_LABELS = 64;
/** A selector's text is at most this long. */
export const MAX_SELECTOR_LENGTH = 1024;

const NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Why `key` is not a label key, or undefined when it is one (`[prefix/]name`). */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    return `label key ${JSON.stringify(key)}: the prefix before "/" must be a lower-case DNS subdomain of at most 253 characters`;
  }
  if (!NAME.test(name)) {
    return `label key ${JSON.stringify(key)}: the name must be 1-63 characters of letters, digits, "-", "_" and ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Why `value` is not a label value, or undefined when it is one (empty is allowed). */
export function labelValueProblem(key: string, value: string): string | undefined {
  if (value === '' || NAME.test(value)) return undefined;
  return `label ${JSON.stringify(key)}: the value ${JSON.stringify(value.slice(0, 80))} must be empty or 1-63 characters of letters, digits, "-", "_" and ".", starting and ending with a letter or digit`;
}

/** Checks a whole label map from a user; returns a copy with keys in sorted order. */
export function assertLabels(input: unknown): Labels {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new InvalidInputError('labels must be an object of key → value strings');
  }
  const entries = Object.entries(input as Record<string, unknown>);
  if (entries.length > MAX_LABELS) throw new InvalidInputError(`a machine has at most ${MAX_LABELS} labels (got ${entries.length})`);
  const out: Labels = {};
  for (const [key, value] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const keyProblem = labelKeyProblem(key);
    if (keyProblem) throw new InvalidInputError(keyProblem);
    if (typeof value !== 'string') throw new InvalidInputError(`label ${JSON.stringify(key)}: the value must be a string`);
    const valueProblem = labelValueProblem(key, value);
    if (valueProblem) throw new InvalidInputError(valueProblem);
    out[key] = value;
  }
  return out;
}

/**
 * Applies `key=value` (set) and `key-` (remove) arguments, as `kubectl label` does, to a copy of
 * `labels`. e.g. `applyLabelArgs({a: '1'}, ['role=web', 'a-'])` → `{role: 'web'}`
 */
export function applyLabelArgs(labels: Labels, args: readonly string[]): Labels {
  const out: Labels = { ...labels };
  for (const arg of args) {
    if (arg.endsWith('-') && !arg.includes('=')) {
      const key = arg.slice(0, -1);
      const problem = labelKeyProblem(key);
      if (problem) throw new InvalidInputError(problem);
      delete out[key];
      continue;
    }
    const eq = arg.indexOf('=');
    if (eq <= 0) throw new InvalidInputError(`${JSON.stringify(arg)}: expected key=value to set a label or key- to remove one`);
    out[arg.slice(0, eq)] = arg.slice(eq + 1);
  }
  return assertLabels(out);
}

/** One requirement of a selector; a selector is their AND. */
export type Requirement =
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'notexists' };

/** A parsed selector: every requirement must hold. The empty selector matches everything. */
export interface Selector {
  requirements: Requirement[];
}

/**
 * Parses a label selector: `role=web,rack in (r12,r13),!gpu`. Forms: `k=v`, `k==v`, `k!=v`,
 * `k in (a,b)`, `k notin (a,b)`, `k` (has the label), `!k` (has not). `k=v` is `k in (v)` and `k!=v`
 * is `k notin (v)`; as in Kubernetes, `!=` and `notin` also match machines without the label.
 * Throws InvalidInputError naming the position and what was expected.
 */
export function parseSelector(text: string): Selector {
  if (text.length > MAX_SELECTOR_LENGTH) throw new InvalidInputError(`selector: at most ${MAX_SELECTOR_LENGTH} characters`);
  const p = new SelectorParser(text);
  return { requirements: p.parse() };
}

class SelectorParser {
  private pos = 0;
  constructor(private readonly text: string) {}

  parse(): Requirement[] {
    const out: Requirement[] = [];
    this.space();
    if (this.pos === this.text.length) return out;
    for (;;) {
      out.push(this.requirement());
      this.space();
      if (this.pos === this.text.length) return out;
      this.expect(',');
    }
  }

  private requirement(): Requirement {
    this.space();
    if (this.peek() === '!') {
      this.pos++;
      this.space();
      return { key: this.key(), op: 'notexists' };
    }
    const key = this.key();
    this.space();
    if (this.pos === this.text.length || this.peek() === ',') return { key, op: 'exists' };
    if (this.text.startsWith('!=', this.pos)) {
      this.pos += 2;
      return { key, op: 'notin', values: [this.value(key)] };
    }
    if (this.text.startsWith('==', this.pos)) {
      this.pos += 2;
      return { key, op: 'in', values: [this.value(key)] };
    }
    if (this.peek() === '=') {
      this.pos++;
      return { key, op: 'in', values: [this.value(key)] };
    }
    const word = this.word();
    if (word === 'in' || word === 'notin') {
      this.space();
      this.expect('(');
      const values: string[] = [];
      for (;;) {
        values.push(this.value(key));
        this.space();
        if (this.peek() === ')') break;
        this.expect(',');
      }
      this.pos++;
      return { key, op: word, values };
    }
    throw this.fail(`expected "=", "==", "!=", "in", "notin", "," or the end after ${JSON.stringify(key)}`);
  }

  private key(): string {
    const start = this.pos;
    while (this.pos < this.text.length && /[A-Za-z0-9_./-]/.test(this.text[this.pos]!)) this.pos++;
    const key = this.text.slice(start, this.pos);
    if (!key) throw this.fail('expected a label key');
    const problem = labelKeyProblem(key);
    if (problem) throw new InvalidInputError(`selector: ${problem}`);
    return key;
  }

  private value(key: string): string {
    this.space();
    const start = this.pos;
    while (this.pos < this.text.length && /[A-Za-z0-9_.-]/.test(this.text[this.pos]!)) this.pos++;
    const value = this.text.slice(start, this.pos);
    const problem = labelValueProblem(key, value);
    if (problem) throw new InvalidInputError(`selector: ${problem}`);
    return value;
  }

  private word(): string {
    const start = this.pos;
    while (this.pos < this.text.length && /[a-z]/.test(this.text[this.pos]!)) this.pos++;
    return this.text.slice(start, this.pos);
  }

  private space(): void {
    while (this.pos < this.text.length && (this.text[this.pos] === ' ' || this.text[this.pos] === '\t')) this.pos++;
  }

  private peek(): string | undefined {
    return this.text[this.pos];
  }

  private expect(c: string): void {
    this.space();
    if (this.peek() !== c) throw this.fail(`expected ${JSON.stringify(c)}`);
    this.pos++;
  }

  private fail(what: string): InvalidInputError {
    const at = this.pos < this.text.length ? `at ${JSON.stringify(this.text.slice(this.pos, this.pos + 20))} (character ${this.pos + 1})` : 'at the end';
    return new InvalidInputError(`selector ${JSON.stringify(this.text.slice(0, 200))}: ${what} ${at}`);
  }
}

/** True when `labels` satisfy every requirement of `selector`. */
export function matchesSelector(labels: Labels, selector: Selector): boolean {
  return selector.requirements.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    switch (r.op) {
      case 'exists':
        return has;
      case 'notexists':
        return !has;
      case 'in':
        return has && r.values.includes(labels[r.key]!);
      case 'notin':
        return !has || !r.values.includes(labels[r.key]!);
    }
  });
}

/** The canonical text of a selector: `rack in (r12,r13),role=web,!gpu` (same meaning, stable form). */
export function formatSelector(selector: Selector): string {
  return selector.requirements
    .map((r) => {
      switch (r.op) {
        case 'exists':
          return r.key;
        case 'notexists':
          return `!${r.key}`;
        case 'in':
          return r.values.length === 1 ? `${r.key}=${r.values[0]}` : `${r.key} in (${r.values.join(',')})`;
        case 'notin':
          return r.values.length === 1 ? `${r.key}!=${r.values[0]}` : `${r.key} notin (${r.values.join(',')})`;
      }
    })
    .join(',');
}

/** Labels as one word: `role=web,rack=r12` (in the order given), or '' without any. */
export function formatLabels(labels: Labels | undefined): string {
  return Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
