import type { BuildLifecycle } from './build-lifecycle.ts';
import { ConflictError, DomainError, InvalidInputError, NotFoundError, UnprocessableError } from './errors.ts';
import { machinePages } from './machine-pages.ts';
import { parseSelector } from './labels.ts';
import { applySettings, isConfigured, profileFor } from './machine-settings.ts';
import type { Notifier } from './notifier.ts';
import { DuplicateKeyError, type Storage, type Stores } from './ports.ts';
import { assertRuleFields, firstMatchingRule, ruleMatches, type Rule, type RuleFields } from './rule.ts';
import { nowIso, type Actor, type Build, type Machine } from './types.ts';
import { isRowId } from './validation.ts';

/**
 * The most machines one apply changes, and one preview works out the changes of (a preview counts
 * every match, and shows the first this many by id).
 */
export const MAX_RULE_MACHINES = 10_000;

/** What a rule would do (preview) or did (apply) to one machine. */
export interface RuleEffect {
  id: number;
  service_tag: string;
  /** The rule that applies (apply: the first matching one). */
  rule: string;
  /** Fields it changes, e.g. `['profile', 'labels', 'hostname']` */
  changes: string[];
  hostname: string | null;
  profile: string | null;
  labels: Record<string, string>;
  /** A build requested (apply) or that would be (preview). */
  build: boolean;
  error?: { code: string; message: string };
}

/** A rule applied to one machine: its settings, the event naming it, and its build when it asks for one. */
async function applyRule(tx: Stores, rule: Rule, machine: Machine, actor: Actor, lifecycle: BuildLifecycle, now: string): Promise<{ effect: RuleEffect; build?: Build }> {
  const outcome = await applySettings(tx, machine.id, rule.set, lifecycle.nixpkgs, now);
  const m = outcome.machine;
  const profile = m.profile === null ? null : await profileFor(tx, m.profile);
  let build: Build | undefined;
  const wantsBuild = rule.build || (profile?.auto_build ?? false);
  const note: string[] = [];
  if (wantsBuild) {
    if (!isConfigured(m)) note.push('not built: it has no hostname or nothing to build');
    else if (!m.out_of_date) note.push('not built: its image is up to date');
    else if (await tx.builds.findActiveForMachine(m.id)) note.push('not built: a build is already pending or running');
    else build = await lifecycle.requestIn(tx, m.id, actor);
  }
  const parts = [
    ...(outcome.changed.includes('profile') ? [`profile ${m.profile}`] : []),
    ...(outcome.changed.includes('labels') ? ['labels'] : []),
    ...(outcome.named ? [`hostname ${outcome.named}`] : []),
    ...(build ? [`build ${build.id}`] : []),
    ...note,
  ];
  await tx.events.record({
    kind: 'machine.rule_applied',
    machineId: m.id,
    actor,
    message: `rule ${rule.name} applied${parts.length ? `: ${parts.join(', ')}` : ' (nothing to change)'}`,
    data: { rule: rule.name, rule_id: rule.id, fields: outcome.changed, ...(build ? { build_id: build.id } : {}) },
  });
  return {
    effect: { id: m.id, service_tag: m.service_tag, rule: rule.name, changes: outcome.changed, hostname: m.hostname, profile: m.profile, labels: m.labels, build: build !== undefined },
    ...(build ? { build } : {}),
  };
}

/**
 * On a machine's first enrollment, inside the enrollment's transaction: the first matching enabled rule
 * applies. A rule that cannot be applied (a pattern's label missing, a name taken) leaves the machine
 * enrolled and says why in an event; it never fails the enrollment.
 */
export async function applyRulesAtEnrollment(tx: Stores, machine: Machine, lifecycle: BuildLifecycle, now: string): Promise<{ machine: Machine; build?: Build }> {
  const rule = firstMatchingRule(await tx.rules.list(), machine);
  if (!rule) return { machine };
  const actor: Actor = { kind: 'system', name: `rule:${rule.name}` };
  try {
    const { build } = await applyRule(tx, rule, machine, actor, lifecycle, now);
    return { machine: (await tx.machines.findById(machine.id)) ?? machine, ...(build ? { build } : {}) };
  } catch (err) {
    if (!(err instanceof DomainError)) throw err;
    await tx.events.record({
      kind: 'machine.rule_failed',
      machineId: machine.id,
      actor,
      message: `rule ${rule.name} could not be applied: ${err.message}`,
      data: { rule: rule.name, rule_id: rule.id },
    });
    return { machine: (await tx.machines.findById(machine.id)) ?? machine };
  }
}

/** Rules: their list, edits, previews and explicit re-application. */
export class RuleService {
  constructor(
    private readonly storage: Storage,
    private readonly notifier: Notifier,
    private readonly lifecycle: BuildLifecycle,
  ) {}

  list(): Promise<Rule[]> {
    return this.storage.rules.list();
  }

  async get(ref: string): Promise<Rule> {
    const rule = isRowId(ref) ? await this.storage.rules.findById(Number(ref)) : (await this.storage.rules.list()).find((r) => r.name === ref);
    if (!rule) throw new NotFoundError(`rule ${ref} not found`);
    return rule;
  }

  async create(body: unknown, actor: Actor): Promise<Rule> {
    const fields = assertRuleFields(body);
    return this.storage.transaction(async (tx) => {
      await checkProfile(tx, fields);
      const rule = await tx.rules.insert(fields, nowIso()).catch(renameTaken(fields.name));
      await tx.events.record({ kind: 'rule.created', actor, message: `rule ${rule.name} created`, data: { rule: rule.name, rule_id: rule.id } });
      return rule;
    });
  }

  async update(ref: string, body: unknown, actor: Actor): Promise<Rule> {
    const current = await this.get(ref);
    const { id: _id, created_at: _c, updated_at: _u, ...kept } = current;
    const fields = assertRuleFields({ ...kept, ...(body as object) });
    return this.storage.transaction(async (tx) => {
      await checkProfile(tx, fields);
      const rule = await tx.rules.update(current.id, fields, nowIso()).catch(renameTaken(fields.name));
      if (!rule) throw new NotFoundError(`rule ${ref} not found`);
      await tx.events.record({ kind: 'rule.updated', actor, message: `rule ${rule.name} changed`, data: { rule: rule.name, rule_id: rule.id } });
      return rule;
    });
  }

  async remove(ref: string, actor: Actor): Promise<void> {
    const rule = await this.get(ref);
    await this.storage.transaction(async (tx) => {
      if (!(await tx.rules.delete(rule.id))) throw new NotFoundError(`rule ${ref} not found`);
      await tx.events.record({ kind: 'rule.deleted', actor, message: `rule ${rule.name} deleted`, data: { rule: rule.name, rule_id: rule.id } });
    });
  }

  /**
   * A dry run of a rule body against today's machines: which it matches and what it would set. It
   * writes nothing (the changes are made in a transaction that is rolled back).
   */
  async preview(body: unknown): Promise<{ matched: number; items: RuleEffect[] }> {
    const fields = assertRuleFields(body, false, false);
    const rule: Rule = { ...fields, name: fields.name || 'preview', id: 0, created_at: '', updated_at: '' };
    // Every machine is looked at (the match is on hardware facts, which no query selects); the
    // changes of the first MAX_RULE_MACHINES matches, by id, are worked out.
    const machines: Machine[] = [];
    let matched = 0;
    for await (const page of machinePages(this.storage.machines)) {
      for (const m of page) {
        if (!ruleMatches(rule.match, m)) continue;
        matched++;
        if (machines.length < MAX_RULE_MACHINES) machines.push(m);
      }
    }
    if (machines.length === 0) return { matched: 0, items: [] };
    const items = await dryRun(this.storage, async (tx) => {
      await checkProfile(tx, fields);
      const out: RuleEffect[] = [];
      for (const m of machines) {
        try {
          out.push((await applyRule(tx, rule, m, { kind: 'system', name: 'preview' }, this.lifecycle, nowIso())).effect);
        } catch (err) {
          if (!(err instanceof DomainError)) throw err;
          out.push({ id: m.id, service_tag: m.service_tag, rule: rule.name, changes: [], hostname: m.hostname, profile: m.profile, labels: m.labels, build: false, error: { code: err.code, message: err.message } });
        }
      }
      return out;
    });
    return { matched, items };
  }

  /**
   * Re-applies rules to existing machines picked by a selector: each gets the first matching enabled
   * rule (or only `rule`, when named). 422 when no machine is selected or no rule matches any of them.
   */
  async apply(body: { selector?: unknown; rule?: unknown }, actor: Actor): Promise<{ matched: number; items: RuleEffect[] }> {
    if (typeof body.selector !== 'string') throw new InvalidInputError('selector must be a label selector string, e.g. role=web (an empty string selects every machine)', { field: 'selector' });
    const selector = parseSelector(body.selector);
    const only = body.rule === undefined ? undefined : await this.get(String(body.rule));
    const rules = only ? [{ ...only, enabled: true }] : await this.storage.rules.list();
    const selected = await this.storage.machines.list({ selector, limit: MAX_RULE_MACHINES, offset: 0 });
    const machines = selected.items;
    if (machines.length === 0) throw new UnprocessableError(`selector ${JSON.stringify(body.selector)} matches no machine; nothing was changed`);
    if (selected.total > MAX_RULE_MACHINES) {
      throw new UnprocessableError(`selector ${JSON.stringify(body.selector)} matches ${selected.total} machines; rules are applied again to at most ${MAX_RULE_MACHINES} at once (narrow the selector); nothing was changed`);
    }
    const pairs = machines.map((m) => ({ m, rule: firstMatchingRule(rules, m) })).filter((p): p is { m: Machine; rule: Rule } => p.rule !== undefined);
    if (pairs.length === 0) {
      throw new UnprocessableError(`${only ? `rule ${only.name}` : 'no enabled rule'} matches none of the ${machines.length} selected machines; nothing was changed`);
    }
    const builds: Build[] = [];
    const items = await this.storage.transaction(async (tx) => {
      const out: RuleEffect[] = [];
      for (const { m, rule } of pairs) {
        const r = await applyRule(tx, rule, m, actor, this.lifecycle, nowIso());
        out.push(r.effect);
        if (r.build) builds.push(r.build);
      }
      return out;
    });
    for (const b of builds) this.lifecycle.signalRequested(b);
    for (const i of items) this.notifier.emit('machine.updated', i.id);
    return { matched: items.length, items };
  }
}

/** Runs `fn` in a transaction that is always rolled back, returning what it computed. */
export async function dryRun<T>(storage: Storage, fn: (tx: Stores) => Promise<T>): Promise<T> {
  const marker = new DryRunRollback();
  try {
    await storage.transaction(async (tx) => {
      marker.value = await fn(tx);
      throw marker;
    });
  } catch (err) {
    if (err !== marker) throw err;
  }
  return marker.value as T;
}

class DryRunRollback extends Error {
  value: unknown;
  constructor() {
    super('dry run: rolled back');
  }
}

async function checkProfile(tx: Stores, fields: RuleFields): Promise<void> {
  if (fields.set.profile === undefined) return;
  if (!(await tx.profiles.findByName(fields.set.profile))) throw new InvalidInputError(`set.profile: profile ${fields.set.profile} does not exist`, { field: 'set.profile' });
}

function renameTaken(name: string) {
  return (err: unknown): never => {
    if (err instanceof DuplicateKeyError) throw new ConflictError(`a rule named ${name} exists`);
    throw err;
  };
}
