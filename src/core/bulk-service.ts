import type { BuildLifecycle } from './build-lifecycle.ts';
import { DomainError, InvalidInputError, NotFoundError } from './errors.ts';
import { parseHostnamePattern } from './hostname-pattern.ts';
import { assertLabels, parseSelector } from './labels.ts';
import type { MachineService } from './machine-service.ts';
import { applySettings, isConfigured, profileFor, type FleetSettings } from './machine-settings.ts';
import type { Notifier } from './notifier.ts';
import type { Storage } from './ports.ts';
import { assertProfileName } from './profile.ts';
import { dryRun } from './rule-service.ts';
import { nowIso, type Actor, type Machine } from './types.ts';

/** The most machines one bulk request acts on. */
export const MAX_BULK_MACHINES = 10_000;

export type BulkAction = 'set' | 'build' | 'delete';

/** A bulk request as the API takes it (power has its own service). */
export interface BulkRequest {
  action: BulkAction;
  /** A label selector with at least one requirement, e.g. `role=web` */
  selector?: string;
  /** Machine references (ids or service tags), instead of a selector. */
  ids?: string[];
  /** Only machines with this profile (with or without a selector), e.g. `web`. */
  in_profile?: string;
  /** Only machines that are out of date (true) or up to date (false): "rebuild what a profile edit touched". */
  out_of_date?: boolean;
  profile?: string | null;
  labels?: Record<string, string>;
  hostname_pattern?: string;
  dry_run?: boolean;
}

/** One machine's outcome. */
export interface BulkResult {
  id: number;
  service_tag: string;
  ok: boolean;
  error?: { code: string; message: string };
  /** set: fields changed (or that would be). */
  changes?: string[];
  hostname?: string | null;
  /** build: the build requested. */
  build_id?: number;
}

export interface BulkAnswer {
  matched: number;
  dry_run: boolean;
  results: BulkResult[];
}

const failure = (m: Machine, err: DomainError): BulkResult => ({ id: m.id, service_tag: m.service_tag, ok: false, error: { code: err.code, message: err.message } });

/** Set, build or delete many machines picked by a selector or by ids; each audited, plus one event for the whole. */
export class BulkService {
  constructor(
    private readonly storage: Storage,
    private readonly notifier: Notifier,
    private readonly machines: Pick<MachineService, 'get' | 'remove'>,
    private readonly lifecycle: BuildLifecycle,
  ) {}

  async run(req: BulkRequest, actor: Actor): Promise<BulkAnswer> {
    const settings = req.action === 'set' ? checkSettings(req) : undefined;
    const targets = await this.select(req);
    const dry = req.dry_run === true;
    const what = describeSelection(req);
    let results: BulkResult[];
    if (settings) results = await this.set(targets, settings, actor, dry, what);
    else if (req.action === 'build') results = await this.build(targets, actor, dry);
    else results = await this.delete(targets, actor, dry);
    if (!dry && req.action !== 'set') await this.audit(req, actor, what, results);
    return { matched: targets.length, dry_run: dry, results };
  }

  private async select(req: BulkRequest): Promise<Machine[]> {
    const narrowed = req.selector !== undefined || req.in_profile !== undefined || req.out_of_date !== undefined;
    if (req.ids !== undefined && narrowed) throw new InvalidInputError('give either ids, or a selector, in_profile and out_of_date: not both', { field: 'ids' });
    if (req.ids === undefined && !narrowed) throw new InvalidInputError('give the machines: a selector, in_profile, out_of_date or ids', { field: 'selector' });
    if (req.ids !== undefined) {
      const found: Machine[] = [];
      for (const ref of req.ids) found.push(await this.machines.get(ref));
      return [...new Map(found.map((m) => [m.id, m])).values()];
    }
    const selector = req.selector === undefined ? undefined : parseSelector(req.selector);
    if (selector && selector.requirements.length === 0) throw new InvalidInputError('selector is empty; a bulk action needs at least one requirement, e.g. role=web', { field: 'selector' });
    if (req.in_profile !== undefined) {
      const name = assertProfileName(req.in_profile);
      if (!(await this.storage.profiles.findByName(name))) throw new InvalidInputError(`profile ${name} does not exist`, { field: 'in_profile' });
    }
    const page = await this.storage.machines.list({
      ...(selector ? { selector } : {}),
      ...(req.in_profile !== undefined ? { profile: req.in_profile } : {}),
      ...(req.out_of_date !== undefined ? { outOfDate: req.out_of_date } : {}),
      limit: MAX_BULK_MACHINES + 1,
      offset: 0,
    });
    if (page.total > MAX_BULK_MACHINES) throw new InvalidInputError(`${describeSelection(req)} matches ${page.total} machines; at most ${MAX_BULK_MACHINES} at once`, { field: 'selector' });
    return page.items;
  }

  /** All or nothing: one transaction; a machine that cannot take the settings fails the whole request. */
  private async set(targets: Machine[], settings: FleetSettings, actor: Actor, dry: boolean, what: string): Promise<BulkResult[]> {
    const work = async (tx: Parameters<Parameters<Storage['transaction']>[0]>[0]) => {
      if (settings.profile) await profileFor(tx, settings.profile);
      const out: BulkResult[] = [];
      for (const m of targets) {
        const now = nowIso();
        let outcome;
        try {
          outcome = await applySettings(tx, m.id, settings, this.lifecycle.nixpkgs, now);
        } catch (err) {
          if (err instanceof DomainError) throw new DomainError(err.code, `${m.service_tag}: ${err.message.replace(`${m.service_tag}: `, '')}; nothing was changed`);
          throw err;
        }
        await tx.events.record({
          kind: 'machine.updated',
          machineId: m.id,
          actor,
          message: outcome.changed.length ? `bulk: changed ${outcome.changed.join(', ')}` : 'bulk: nothing to change',
          data: { fields: outcome.changed, bulk: true },
        });
        out.push({ id: m.id, service_tag: m.service_tag, ok: true, changes: outcome.changed, hostname: outcome.machine.hostname });
      }
      await tx.events.record({
        kind: 'machines.bulk',
        actor,
        message: `bulk set on ${what}: ${out.length} machines`,
        data: { action: 'set', selection: what, matched: out.length, fields: Object.keys(settings) },
      });
      return out;
    };
    if (dry) return dryRun(this.storage, work);
    const results = await this.storage.transaction(work);
    for (const r of results) this.notifier.emit('machine.updated', r.id);
    return results;
  }

  /** Each machine on its own: one already building (or not buildable) is skipped and says so. */
  private async build(targets: Machine[], actor: Actor, dry: boolean): Promise<BulkResult[]> {
    const out: BulkResult[] = [];
    for (const m of targets) {
      try {
        if (dry) {
          const active = await this.storage.builds.findActiveForMachine(m.id);
          if (active) throw new DomainError('conflict', `machine ${m.service_tag} already has build ${active.id} ${active.status}`);
          if (!isConfigured(m)) throw new DomainError('unprocessable', `machine ${m.service_tag} has no hostname or nothing to build`);
          out.push({ id: m.id, service_tag: m.service_tag, ok: true });
          continue;
        }
        const build = await this.lifecycle.request(m.id, actor);
        out.push({ id: m.id, service_tag: m.service_tag, ok: true, build_id: build.id });
      } catch (err) {
        if (!(err instanceof DomainError)) throw err;
        out.push(failure(m, err));
      }
    }
    return out;
  }

  private async delete(targets: Machine[], actor: Actor, dry: boolean): Promise<BulkResult[]> {
    const out: BulkResult[] = [];
    for (const m of targets) {
      if (dry) {
        out.push({ id: m.id, service_tag: m.service_tag, ok: true });
        continue;
      }
      try {
        await this.machines.remove(`id:${m.id}`, actor);
        out.push({ id: m.id, service_tag: m.service_tag, ok: true });
      } catch (err) {
        if (err instanceof NotFoundError || err instanceof DomainError) out.push(failure(m, err));
        else throw err;
      }
    }
    return out;
  }

  private async audit(req: BulkRequest, actor: Actor, what: string, results: BulkResult[]): Promise<void> {
    const ok = results.filter((r) => r.ok).length;
    await this.storage.events.record({
      kind: 'machines.bulk',
      actor,
      message: `bulk ${req.action} on ${what}: ${ok} of ${results.length} machines`,
      data: { action: req.action, selection: what, matched: results.length, ok },
    });
  }
}

/** The fields of a bulk `set`, all checked before anything is written. */
function checkSettings(req: BulkRequest): FleetSettings {
  const out: FleetSettings = {};
  if (req.profile !== undefined) out.profile = req.profile === null ? null : assertProfileName(req.profile);
  if (req.labels !== undefined) out.labels = assertLabels(req.labels);
  if (req.hostname_pattern !== undefined) out.hostname_pattern = parseHostnamePattern(req.hostname_pattern).text;
  if (Object.keys(out).length === 0) throw new InvalidInputError('set needs profile, labels or hostname_pattern', { field: 'action' });
  return out;
}

/** How a bulk request picked its machines, for events and messages: `selector role=web, profile web, out of date` */
function describeSelection(req: BulkRequest): string {
  if (req.ids !== undefined) return `${req.ids.length} named machines`;
  return [
    ...(req.selector !== undefined ? [`selector ${req.selector}`] : []),
    ...(req.in_profile !== undefined ? [`profile ${req.in_profile}`] : []),
    ...(req.out_of_date !== undefined ? [req.out_of_date ? 'out of date' : 'up to date'] : []),
  ].join(', ');
}
