import { cablingSearchText } from '../../src/core/cabling.ts';
import { matchesSelector } from '../../src/core/labels.ts';
import type { BuildStatus } from '../../src/core/lifecycle.ts';
import {
  DuplicateKeyError,
  StillReferencedError,
  type BootKey,
  type BootTarget,
  type BuildBootFacts,
  type BuildFields,
  type BuildRecord,
  type BuildStore,
  type BuildQueueStats,
  type BuildSummary,
  type BmcCredentialSetStore,
  type CredentialStore,
  type IdentityHolder,
  type MachineIdentity,
  type NewMachine,
  type EventFilter,
  type EventStore,
  type EventSummary,
  type MachineConditions,
  type MachineFilter,
  type MachinePatch,
  type MachineStore,
  type NewBuild,
  type NewEvent,
  type PowerStore,
  type ProfileStore,
  type RuleStore,
  type RateLimitStore,
  type SettingStore,
  type BuilderPresence,
  type BuilderPresenceStore,
  type Storage,
  type Stores,
  type SummaryRow,
  type UserStore,
  type NewRollout,
  type RolloutPatch,
  type RolloutStore,
  type DueDelivery,
  type Webhook,
  type WebhookDelivery,
  type WebhookStore,
} from '../../src/core/ports.ts';
import { isOutOfDate } from '../../src/core/config-hash.ts';
import type { Profile } from '../../src/core/profile.ts';
import type { Rule } from '../../src/core/rule.ts';
import { subscribesTo, webhookPayload } from '../../src/core/webhook-events.ts';
import { isRolloutActive, type Rollout, type RolloutMachine } from '../../src/core/rollout-machine.ts';
import type { ApiToken, BmcCredentialSet, Build, Credential, Event, Machine, MachinePower, Role, User, UserWithHash } from '../../src/core/types.ts';
import { nowIso } from '../../src/core/types.ts';
import { randomUUID } from 'node:crypto';

type WebhookRow = Webhook & { secret: string };
type DeliveryRow = WebhookDelivery & { payload: string; lease_owner: string | null; lease_until: string | null };

/** A machine as kept in memory: the API object plus what the SQL table holds beside it. */
interface MachineRow extends Omit<Machine, 'out_of_date'> {
  image_build_id: number | null;
  reboot_requested_at: string | null;
  system_uuid: string | null;
  identity_mac: string | null;
  desired_hash: string | null;
  built_hash: string | null;
}

/** Every table in plain arrays; a transaction works on a deep copy and commits by swapping it in. */
interface Tables {
  machines: MachineRow[];
  builds: BuildRecord[];
  /** builds.boot_nonce, by build id. */
  bootMarkers: Record<number, string>;
  events: Array<Event & { actor_kind: string; actor_name: string }>;
  users: UserWithHash[];
  sessions: Array<{ id: number; token_hash: string; user_id: number; expires_at: string; last_used_at: string | null }>;
  tokens: Array<{ id: number; token_hash: string; user_id: number; name: string; role: Role; created_at: string; expires_at: string | null; last_used_at: string | null; revoked_at: string | null }>;
  webhooks: WebhookRow[];
  deliveries: DeliveryRow[];
  power: MachinePower[];
  credentialSets: BmcCredentialSet[];
  profiles: Profile[];
  rules: Rule[];
  /** Rollouts with their machines; `locks` is rollout_machines.lock_machine_id: machine id → rollout id. */
  rollouts: Array<Rollout & { lease_owner: string | null; lease_expires_at: string | null }>;
  locks: Record<number, number>;
  /** Token buckets by `<bucket> <key>`. */
  rateLimits: Record<string, { tokens: number; updatedAt: number; expiresAt: number }>;
  settings: Record<string, string>;
  builderPresence: Record<string, BuilderPresence>;
  nextId: number;
}

/** The unique indexes on identity_mac and system_uuid, as the SQL stores have them. */
function assertIdentityFree(rows: MachineRow[], exceptId: number | undefined, mac: string | null, uuid: string | null): void {
  const taken = rows.some((r) => r.id !== exceptId && ((mac !== null && r.identity_mac === mac) || (uuid !== null && r.system_uuid === uuid)));
  if (taken) throw new DuplicateKeyError('its MAC or UUID was taken by another machine meanwhile');
}

const empty = (): Tables => ({ machines: [], builds: [], bootMarkers: {}, events: [], users: [], sessions: [], tokens: [], webhooks: [], deliveries: [], power: [], credentialSets: [], profiles: [], rules: [], rollouts: [], locks: {}, rateLimits: {}, settings: {}, builderPresence: {}, nextId: 1 });
const copy = <T>(v: T): T => structuredClone(v);

/**
 * The Storage port in memory, for unit tests of the core and of the interfaces: the same contract as
 * src/storage/ (the storage contract suite runs against it too), no database, microseconds a call.
 * `failing` makes every call throw, to exercise error paths.
 */
export class MemoryStorage implements Storage {
  readonly notifiesAcrossProcesses = false;
  /** When set, every store call throws it (a broken database). */
  failing: Error | undefined;
  private tables: Tables = empty();
  private chain: Promise<unknown> = Promise.resolve();

  get machines(): MachineStore {
    return new MemoryStores(() => this.live(), () => this.failing).machines;
  }
  get builds(): BuildStore {
    return new MemoryStores(() => this.live(), () => this.failing).builds;
  }
  get events(): EventStore {
    return new MemoryStores(() => this.live(), () => this.failing).events;
  }
  get users(): UserStore {
    return new MemoryStores(() => this.live(), () => this.failing).users;
  }
  get credentials(): CredentialStore {
    return new MemoryStores(() => this.live(), () => this.failing).credentials;
  }
  get webhooks(): WebhookStore {
    return new MemoryStores(() => this.live(), () => this.failing).webhooks;
  }
  get power(): PowerStore {
    return new MemoryStores(() => this.live(), () => this.failing).power;
  }
  get bmcCredentialSets(): BmcCredentialSetStore {
    return new MemoryStores(() => this.live(), () => this.failing).bmcCredentialSets;
  }
  get profiles(): ProfileStore {
    return new MemoryStores(() => this.live(), () => this.failing).profiles;
  }
  get rules(): RuleStore {
    return new MemoryStores(() => this.live(), () => this.failing).rules;
  }
  get rollouts(): RolloutStore {
    return new MemoryStores(() => this.live(), () => this.failing).rollouts;
  }
  get settings(): SettingStore {
    return new MemoryStores(() => this.live(), () => this.failing).settings;
  }
  get builderPresence(): BuilderPresenceStore {
    return new MemoryStores(() => this.live(), () => this.failing).builderPresence;
  }
  get rateLimits(): RateLimitStore {
    return new MemoryStores(() => this.live(), () => this.failing).rateLimits;
  }

  private live(): Tables {
    return this.tables;
  }

  /** One transaction at a time (like SQLite): changes land together or not at all. */
  transaction<T>(fn: (tx: Stores) => Promise<T>): Promise<T> {
    const run = this.chain.then(async () => {
      const draft = copy(this.tables);
      const result = await fn(new MemoryStores(() => draft, () => this.failing));
      this.tables = draft;
      return result;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  async ping(): Promise<void> {
    if (this.failing) throw this.failing;
  }

  async close(): Promise<void> {}
}

class MemoryStores implements Stores {
  constructor(
    private readonly t: () => Tables,
    private readonly failing: () => Error | undefined,
  ) {}

  private check(): Tables {
    const err = this.failing();
    if (err) throw err;
    return this.t();
  }

  get machines(): MachineStore {
    const db = () => this.check();
    const toMachine = (row: MachineRow): Machine => {
      const { image_build_id: _i, system_uuid: _u, identity_mac: _m, reboot_requested_at: _r, desired_hash: desired, built_hash: built, booted_health: health, ...machine } = copy(row);
      return { ...machine, ...(health ? { booted_health: health } : {}), out_of_date: isOutOfDate(desired, built) };
    };
    const meeting = (filter: MachineConditions): MachineRow[] => {
      const needle = filter.search?.toLowerCase();
      return db().machines.filter(
        (m) =>
          (!filter.status || m.status === filter.status) &&
          (!needle || searchText(m).includes(needle)) &&
          (!filter.selector || matchesSelector(m.labels, filter.selector)) &&
          (filter.profile === undefined || m.profile === filter.profile) &&
          (filter.outOfDate === undefined || isOutOfDate(m.desired_hash, m.built_hash) === filter.outOfDate),
      );
    };
    return {
      async insertEnrolled(m: NewMachine, now: string) {
        const t = db();
        if (t.machines.some((r) => r.service_tag === m.service_tag)) return undefined;
        assertIdentityFree(t.machines, undefined, m.identity_mac, m.system_uuid);
        const row: MachineRow = {
          id: t.nextId++,
          service_tag: m.service_tag,
          mac_address: m.mac_address,
          hardware: copy(m.hardware),
          status: 'enrolled',
          hostname: null,
          description: null,
          nixos_config: null,
          nixos_files: null,
          labels: {},
          profile: null,
          desired_hash: null,
          built_hash: null,
          last_build_id: null,
          booted_build_id: null,
          booted_at: null,
          image_build_id: null,
          reboot_requested_at: null,
          enrolled_at: now,
          updated_at: now,
          last_seen_at: now,
          identity_mac: m.identity_mac,
          system_uuid: m.system_uuid,
          identity_conflict: copy(m.identity_conflict),
        };
        t.machines.push(row);
        return toMachine(row);
      },
      async refreshHardware(id, hardware, now) {
        const m = db().machines.find((r) => r.id === id);
        if (!m) throw new Error(`no machine ${id}`);
        Object.assign(m, { hardware: copy(hardware), last_seen_at: now, updated_at: now });
        return toMachine(m);
      },
      async findIdentity(id): Promise<MachineIdentity | undefined> {
        const m = db().machines.find((r) => r.id === id);
        return (
          m && {
            id: m.id,
            service_tag: m.service_tag,
            mac_address: m.mac_address,
            identity_mac: m.identity_mac,
            system_uuid: m.system_uuid,
            identity_conflict: copy(m.identity_conflict),
          }
        );
      },
      async identityHolders(mac, uuid): Promise<IdentityHolder[]> {
        return db()
          .machines.filter((r) => r.identity_mac === mac || (uuid !== null && r.system_uuid === uuid))
          .map((r) => ({ id: r.id, service_tag: r.service_tag, mac: r.identity_mac === mac, uuid: uuid !== null && r.system_uuid === uuid }));
      },
      async findById(id) {
        const m = db().machines.find((r) => r.id === id);
        return m && toMachine(m);
      },
      async findByServiceTag(tag) {
        const m = db().machines.find((r) => r.service_tag === tag);
        return m && toMachine(m);
      },
      async imageBuildId(id) {
        return db().machines.find((r) => r.id === id)?.image_build_id ?? null;
      },
      async imageBuildIds(ids) {
        const wanted = new Set(ids);
        const found = new Map<number, number | null>();
        for (const m of db().machines) if (wanted.has(m.id)) found.set(m.id, m.image_build_id);
        return found;
      },
      async scan(conditions: MachineConditions, afterId: number, limit: number) {
        return meeting(conditions)
          .filter((m) => m.id > afterId)
          .sort((a, b) => a.id - b.id)
          .slice(0, limit)
          .map(toMachine);
      },
      async list(filter: MachineFilter) {
        let rows = meeting(filter);
        const sort = filter.sort ?? 'id';
        const sign = filter.order === 'desc' ? -1 : 1;
        rows = [...rows].sort((a, b) => sign * (compare(a[sort], b[sort]) || a.id - b.id));
        return { items: rows.slice(filter.offset, filter.offset + filter.limit).map(toMachine), total: rows.length };
      },
      async countByStatus() {
        return countBy(db().machines.map((m) => m.status));
      },
      async update(id, patch: MachinePatch, now) {
        const m = db().machines.find((r) => r.id === id);
        if (!m) throw new Error(`no machine ${id}`);
        const t = db();
        assertIdentityFree(t.machines, id, patch.identity_mac ?? null, patch.system_uuid ?? null);
        if (patch.hostname && t.machines.some((r) => r.id !== id && r.hostname === patch.hostname)) {
          throw new DuplicateKeyError(`hostname ${patch.hostname} is taken by another machine`);
        }
        Object.assign(m, copy(patch), configFields(patch), { updated_at: now });
        if (patch.image_build_id !== undefined) {
          m.built_hash = patch.image_build_id === null ? null : (t.builds.find((b) => b.id === patch.image_build_id)?.config_hash ?? null);
        }
        return toMachine(m);
      },
      async claimHostname(id, hostname, now) {
        const t = db();
        const m = t.machines.find((r) => r.id === id);
        if (!m) throw new Error(`no machine ${id}`);
        if (t.machines.some((r) => r.id !== id && r.hostname === hostname)) return false;
        Object.assign(m, { hostname, updated_at: now });
        return true;
      },
      async hostnamesLike(prefix, suffix) {
        return db()
          .machines.map((m) => m.hostname)
          .filter((h): h is string => h !== null && h.startsWith(prefix) && h.endsWith(suffix) && h.length >= prefix.length + suffix.length);
      },
      async delete(id) {
        const t = db();
        t.machines = t.machines.filter((m) => m.id !== id);
        t.builds = t.builds.filter((b) => b.machine_id !== id);
        t.power = t.power.filter((p) => p.machine_id !== id);
      },
      async setDesiredHashes(hashes, now) {
        let changed = 0;
        for (const { id, hash } of hashes) {
          const row = db().machines.find((m) => m.id === id);
          if (!row || row.desired_hash === hash) continue;
          row.desired_hash = hash;
          row.updated_at = now;
          changed++;
        }
        return changed;
      },
      async touchLastSeen(ids, now) {
        for (const m of db().machines) if (ids.includes(m.id)) m.last_seen_at = now;
      },
      async findBootTarget(key: BootKey, value: string): Promise<BootTarget | undefined> {
        const column = key === 'mac_address' ? 'identity_mac' : key;
        const m = db().machines.find((r) => r[column] === value);
        return (
          m && {
            id: m.id,
            serviceTag: m.service_tag,
            status: m.status,
            imageBuildId: m.image_build_id,
            systemUuid: m.system_uuid,
            identityConflict: m.identity_conflict !== null,
          }
        );
      },
      async pointingAt(buildId) {
        return db().machines.filter((m) => m.image_build_id === buildId).map((m) => m.id);
      },
      async rebootRequestedAt(id) {
        return db().machines.find((m) => m.id === id)?.reboot_requested_at ?? null;
      },
      async summaryRows(): Promise<SummaryRow[]> {
        return db().machines.map((m) => ({
          status: m.status,
          manufacturer: typeof m.hardware.manufacturer === 'string' ? m.hardware.manufacturer : null,
          model: typeof m.hardware.model === 'string' ? m.hardware.model : null,
          hardware: JSON.stringify(m.hardware),
        }));
      },
    };
  }

  get builds(): BuildStore {
    const db = () => this.check();
    const toBuild = (r: BuildRecord): Build => {
      const { service_tag: _s, lease_owner: _o, lease_expires_at: _e, boot_token: _t, image_key: _k, store_path: _p, profile_config: _c, kernel_params: _kp, skip_boot_check: _sb, ...build } = copy(r);
      return build;
    };
    const find = (id: number) => db().builds.find((b) => b.id === id);
    return {
      async create(b: NewBuild, now) {
        const t = db();
        if (t.builds.some((x) => x.machine_id === b.machine_id && (x.status === 'pending' || x.status === 'building'))) {
          throw new DuplicateKeyError(`machine ${b.service_tag} already has a build pending or running`);
        }
        const { hold, rollout_id: _r, profile_name: profileName, profile_config: profileConfig, kernel_params: params, config_hash: hash, health_check: check, skip_boot_check: skipBootCheck, ...fields } = b;
        const row: BuildRecord = {
          ...copy(fields),
          config_files: copy(b.config_files ?? { 'configuration.nix': b.config }),
          hold: hold ?? false,
          image_swept_at: null,
          boot_check_seconds: null,
          profile_config: profileConfig ?? null,
          config_hash: hash ?? null,
          id: t.nextId++,
          status: 'pending',
          log_output: '',
          error: null,
          artifact_url: null,
          attempts: 0,
          created_at: now,
          started_at: null,
          completed_at: null,
          lease_owner: null,
          lease_expires_at: null,
          store_path: null,
          profile: profileName ?? null,
          kernel_params: [...(params ?? [])],
          skip_boot_check: skipBootCheck ?? false,
          ...(check ? { health_check: check } : {}),
          nixpkgs: null,
        };
        t.builds.push(row);
        return toBuild(row);
      },
      async findById(id) {
        const b = find(id);
        return b && toBuild(b);
      },
      async findRecord(id) {
        const b = find(id);
        return b && copy(b);
      },
      async findActiveForMachine(machineId) {
        const b = db().builds.find((x) => x.machine_id === machineId && (x.status === 'pending' || x.status === 'building'));
        return b && toBuild(b);
      },
      async listForMachine(machineId, limit, offset) {
        const rows = db().builds.filter((b) => b.machine_id === machineId).sort((a, b) => b.id - a.id);
        return { items: rows.slice(offset, offset + limit).map((b) => ({ ...toBuild(b), log_output: '' })), total: rows.length };
      },
      async statusesForMachine(machineId) {
        return db().builds.filter((b) => b.machine_id === machineId).map((b) => ({ id: b.id, status: b.status }));
      },
      async recent(limit, machineId): Promise<BuildSummary[]> {
        return db()
          .builds.filter((b) => machineId === undefined || b.machine_id === machineId)
          .sort((a, b) => b.id - a.id)
          .slice(0, limit)
          .map((b) => ({
            id: b.id,
            status: b.status,
            service_tag: b.service_tag,
            hostname: b.hostname,
            error: b.error,
            created_at: b.created_at,
            started_at: b.started_at,
            completed_at: b.completed_at,
            nixpkgs_revision: b.nixpkgs?.revision ?? null,
            nixpkgs_version: b.nixpkgs?.version ?? null,
          }));
      },
      async countByStatus() {
        return countBy(db().builds.map((b) => b.status));
      },
      async queueStats(now): Promise<BuildQueueStats> {
        const builds = db().builds;
        const pending = builds.filter((b) => b.status === 'pending').map((b) => b.created_at).sort();
        const until = new Map<string, string>();
        for (const b of builds) {
          if (b.status !== 'building' || b.lease_owner === null || b.lease_expires_at === null) continue;
          const seen = until.get(b.lease_owner);
          if (seen === undefined || b.lease_expires_at > seen) until.set(b.lease_owner, b.lease_expires_at);
        }
        const live = [...until.values()].filter((u) => u >= now).length;
        return { pending: pending.length, oldestPendingAt: pending[0] ?? null, liveBuilders: live, lostBuilders: until.size - live };
      },
      async transition(id, from: readonly BuildStatus[], to, fields: BuildFields, _now) {
        const b = find(id);
        if (!b || !from.includes(b.status)) return undefined;
        const { nixpkgs_version: version, nixpkgs_revision: revision, nixpkgs_source: source, nixpkgs_sha256: sha256, ...rest } = fields;
        Object.assign(b, rest, { status: to });
        if ([version, revision, source, sha256].some((v) => v !== undefined)) {
          const n = { version: version ?? null, revision: revision ?? null, source: source ?? null, sha256: sha256 ?? null };
          b.nixpkgs = Object.values(n).some((v) => v !== null) ? n : null;
        }
        return toBuild(b);
      },
      async claimNext(owner, leaseUntil, now) {
        const b = db().builds.filter((x) => x.status === 'pending').sort((x, y) => x.id - y.id)[0];
        if (!b) return undefined;
        Object.assign(b, { status: 'building', lease_owner: owner, lease_expires_at: leaseUntil, attempts: b.attempts + 1, started_at: b.started_at ?? now });
        return copy(b);
      },
      async renewLease(id, owner, leaseUntil) {
        const b = find(id);
        if (!b || b.status !== 'building' || b.lease_owner !== owner) return false;
        b.lease_expires_at = leaseUntil;
        return true;
      },
      async appendLog(id, text, _now, owner) {
        const b = find(id);
        if (!b || (owner !== undefined && (b.status !== 'building' || b.lease_owner !== owner))) return;
        b.log_output += text;
      },
      async prependLog(id, text) {
        const b = find(id);
        if (b) b.log_output = text + b.log_output;
      },
      async expiredLeases(now, limit) {
        return db()
          .builds.filter((b) => b.status === 'building' && b.lease_expires_at !== null && b.lease_expires_at < now)
          .sort((a, b) => a.id - b.id)
          .slice(0, limit)
          .map((b) => b.id);
      },
      async findPublishedStorePath(storePath, exceptId) {
        return db()
          .builds.filter((b) => b.store_path === storePath && b.status === 'success' && b.id !== exceptId)
          .sort((a, b) => b.id - a.id)[0]?.id;
      },
      async bootFacts(id): Promise<BuildBootFacts | undefined> {
        const b = find(id);
        return b && { machineId: b.machine_id, bootToken: b.boot_token, imageKey: b.image_key };
      },
      async advanceBootMarker(id, marker) {
        const t = db();
        if (!t.builds.some((x) => x.id === id)) return false;
        const kept = t.bootMarkers[id];
        if (kept !== undefined && kept >= marker) return false;
        t.bootMarkers[id] = marker;
        return true;
      },
      async findIdByImageKey(imageKey) {
        return db().builds.find((b) => b.image_key === imageKey)?.id;
      },
      async publishedImages() {
        return db()
          .builds.filter((b) => b.status === 'success' && b.image_swept_at === null)
          .sort((a, b) => a.machine_id - b.machine_id || b.id - a.id)
          .map((b) => ({ id: b.id, machine_id: b.machine_id }));
      },
      async sweptAmong(ids) {
        return ids.filter((id) => (find(id)?.image_swept_at ?? null) !== null);
      },
      async markImageSwept(id, now) {
        const b = find(id);
        if (!b || b.status !== 'success' || b.image_swept_at !== null) return false;
        b.image_swept_at = now;
        return true;
      },
      async bootMarker(id) {
        return db().bootMarkers[id] ?? null;
      },
      async statusesOf(ids) {
        return db()
          .builds.filter((b) => ids.includes(b.id))
          .map((b) => ({ id: b.id, status: b.status }));
      },
    };
  }

  get events(): EventStore {
    const db = () => this.check();
    const toEvent = (e: Tables['events'][number]): Event => {
      const { actor_kind: _k, actor_name: _n, ...event } = copy(e);
      return event;
    };
    return {
      async record(e: NewEvent) {
        const t = db();
        const id = t.nextId++;
        const now = nowIso();
        const hooks = t.webhooks.filter((w) => w.enabled && subscribesTo(w.events, e.kind));
        if (hooks.length > 0) {
          const m = e.machineId != null ? t.machines.find((x) => x.id === e.machineId) : undefined;
          const payload = webhookPayload({
            id,
            kind: e.kind,
            occurredAt: now,
            actor: e.actor,
            message: e.message,
            data: e.data,
            machine: m && { id: m.id, service_tag: m.service_tag, hostname: m.hostname },
            buildId: e.buildId,
          });
          for (const w of hooks) t.deliveries.push(newDelivery(t, w.id, id, e.kind, payload, randomUUID(), now));
        }
        t.events.push({
          id,
          kind: e.kind,
          machine_id: e.machineId ?? null,
          build_id: e.buildId ?? null,
          actor: e.actor.kind === 'system' ? 'system' : `${e.actor.kind}:${e.actor.name}`,
          actor_kind: e.actor.kind,
          actor_name: e.actor.name,
          message: e.message,
          data: e.data ? copy(e.data) : null,
          created_at: nowIso(),
        });
      },
      async list(filter: EventFilter = {}) {
        const [kind, ...rest] = filter.actor?.split(':') ?? [];
        const rows = db()
          .events.filter(
            (e) =>
              (filter.machineId === undefined || e.machine_id === filter.machineId) &&
              (filter.buildId === undefined || e.build_id === filter.buildId) &&
              (filter.kind === undefined || e.kind === filter.kind) &&
              (filter.actor === undefined || (e.actor_kind === kind && (rest.length === 0 || e.actor_name === rest.join(':')))) &&
              (filter.since === undefined || e.created_at >= filter.since) &&
              (filter.until === undefined || e.created_at < filter.until),
          )
          .sort((a, b) => b.id - a.id);
        const offset = filter.offset ?? 0;
        return { items: rows.slice(offset, offset + (filter.limit ?? 50)).map(toEvent), total: rows.length };
      },
      async recent(limit, machineId): Promise<EventSummary[]> {
        const t = db();
        return t.events
          .filter((e) => machineId === undefined || e.machine_id === machineId)
          .sort((a, b) => b.id - a.id)
          .slice(0, limit)
          .map((e) => ({ id: e.id, kind: e.kind, message: e.message, actor: e.actor, created_at: e.created_at, service_tag: t.machines.find((m) => m.id === e.machine_id)?.service_tag ?? null }));
      },
    };
  }

  get users(): UserStore {
    const db = () => this.check();
    const strip = (u: UserWithHash): User => {
      const { password_hash: _h, ...user } = copy(u);
      return user;
    };
    return {
      async count() {
        return db().users.length;
      },
      async countActiveAdmins() {
        return db().users.filter((u) => u.role === 'admin' && !u.disabled).length;
      },
      async list(limit, offset) {
        const rows = [...db().users].sort((a, b) => a.username.localeCompare(b.username));
        return { items: rows.slice(offset, offset + limit).map(strip), total: rows.length };
      },
      async findByUsername(username) {
        const u = db().users.find((x) => x.username === username);
        return u && copy(u);
      },
      async findById(id) {
        const u = db().users.find((x) => x.id === id);
        return u && copy(u);
      },
      async insert(user) {
        const t = db();
        if (t.users.some((u) => u.username === user.username)) throw new DuplicateKeyError(`user ${user.username} already exists`);
        const row: UserWithHash = { id: t.nextId++, username: user.username, role: user.role, disabled: false, password_hash: user.passwordHash, created_at: user.now, updated_at: user.now };
        t.users.push(row);
        return strip(row);
      },
      async update(id, changes) {
        const u = db().users.find((x) => x.id === id);
        if (!u) return undefined;
        if (changes.role !== undefined) u.role = changes.role;
        if (changes.disabled !== undefined) u.disabled = changes.disabled;
        if (changes.passwordHash !== undefined) u.password_hash = changes.passwordHash;
        u.updated_at = changes.now;
        return strip(u);
      },
      async delete(id) {
        const t = db();
        const before = t.users.length;
        t.users = t.users.filter((u) => u.id !== id);
        t.sessions = t.sessions.filter((s) => s.user_id !== id);
        t.tokens = t.tokens.filter((s) => s.user_id !== id);
        return t.users.length < before;
      },
    };
  }

  get webhooks(): WebhookStore {
    const db = () => this.check();
    const strip = (w: WebhookRow): Webhook => {
      const { secret: _s, ...rest } = copy(w);
      return rest;
    };
    const toDelivery = (d: DeliveryRow): WebhookDelivery => {
      const { payload: _p, lease_owner: _o, lease_until: _u, ...rest } = copy(d);
      return rest;
    };
    return {
      async create(w, now) {
        const t = db();
        const row: WebhookRow = { id: t.nextId++, url: w.url, events: [...w.events], secret: w.secret, enabled: w.enabled, failing_since: null, disabled_reason: null, created_at: now, updated_at: now };
        t.webhooks.push(row);
        return strip(row);
      },
      async list() {
        return db().webhooks.map(strip);
      },
      async get(id) {
        const w = db().webhooks.find((x) => x.id === id);
        return w && strip(w);
      },
      async update(id, patch, now) {
        const w = db().webhooks.find((x) => x.id === id);
        if (!w) return undefined;
        Object.assign(w, copy(patch), { updated_at: now });
        return strip(w);
      },
      async delete(id) {
        const t = db();
        const before = t.webhooks.length;
        t.webhooks = t.webhooks.filter((w) => w.id !== id);
        t.deliveries = t.deliveries.filter((d) => d.webhook_id !== id);
        return t.webhooks.length < before;
      },
      async deliveries(webhookId, limit, offset) {
        const rows = db().deliveries.filter((d) => d.webhook_id === webhookId).sort((a, b) => b.id - a.id);
        return { items: rows.slice(offset, offset + limit).map(toDelivery), total: rows.length };
      },
      async getDelivery(webhookId, id) {
        const d = db().deliveries.find((x) => x.webhook_id === webhookId && x.id === id);
        return d && toDelivery(d);
      },
      async redeliver(webhookId, id, deliveryId, now) {
        const t = db();
        const old = t.deliveries.find((x) => x.webhook_id === webhookId && x.id === id);
        if (!old) return undefined;
        const row = newDelivery(t, webhookId, old.event_id, old.event_type, old.payload, deliveryId, now);
        t.deliveries.push(row);
        return toDelivery(row);
      },
      async claimDue(owner, now, leaseUntil, limit) {
        const t = db();
        const due: Array<[DeliveryRow, WebhookRow]> = [];
        for (const w of t.webhooks.filter((x) => x.enabled)) {
          const head = t.deliveries.filter((d) => d.webhook_id === w.id && d.status === 'pending').sort((a, b) => a.id - b.id)[0];
          if (!head || head.next_attempt_at === null || head.next_attempt_at > now) continue;
          if (head.lease_until !== null && head.lease_until >= now) continue;
          due.push([head, w]);
        }
        return due
          .sort(([a], [b]) => a.id - b.id)
          .slice(0, limit)
          .map(([head, w]): DueDelivery => {
            Object.assign(head, { lease_owner: owner, lease_until: leaseUntil });
            return { ...toDelivery(head), payload: head.payload, url: w.url, secret: w.secret };
          });
      },
      async pruneFinished(before) {
        const t = db();
        const keep = t.deliveries.filter((d) => d.status === 'pending' || d.created_at >= before);
        const removed = t.deliveries.length - keep.length;
        t.deliveries = keep;
        return removed;
      },
      async recordAttempt(id, owner, attempt) {
        const d = db().deliveries.find((x) => x.id === id);
        if (!d || d.lease_owner !== owner) return false;
        Object.assign(d, attempt, { lease_owner: null, lease_until: null });
        return true;
      },
    };
  }

  get credentials(): CredentialStore {
    const db = () => this.check();
    const owner = (userId: number) => db().users.find((u) => u.id === userId)!;
    const toCredential = (row: { id: number; user_id: number; expires_at: string | null; last_used_at: string | null }): Credential => {
      const u = owner(row.user_id);
      return { id: row.id, userId: u.id, username: u.username, userRole: u.role, disabled: u.disabled, expiresAt: row.expires_at, lastUsedAt: row.last_used_at };
    };
    const toToken = (r: Tables['tokens'][number]): ApiToken => ({
      id: r.id,
      name: r.name,
      role: r.role,
      owner: owner(r.user_id).username,
      created_at: r.created_at,
      expires_at: r.expires_at,
      last_used_at: r.last_used_at,
      revoked_at: r.revoked_at,
    });
    return {
      async insertSession(s) {
        const t = db();
        t.sessions.push({ id: t.nextId++, token_hash: s.tokenHash, user_id: s.userId, expires_at: s.expiresAt, last_used_at: s.now });
      },
      async findSession(hash) {
        const s = db().sessions.find((x) => x.token_hash === hash);
        return s && toCredential(s);
      },
      async deleteSession(hash) {
        const t = db();
        const before = t.sessions.length;
        t.sessions = t.sessions.filter((s) => s.token_hash !== hash);
        return t.sessions.length < before;
      },
      async deleteSessionsOf(userId, keepHash) {
        const t = db();
        t.sessions = t.sessions.filter((s) => s.user_id !== userId || s.token_hash === keepHash);
      },
      async deleteExpiredSessions(now) {
        const t = db();
        t.sessions = t.sessions.filter((s) => s.expires_at > now);
      },
      async touchSession(id, now) {
        const s = db().sessions.find((x) => x.id === id);
        if (s) s.last_used_at = now;
      },
      async insertToken(tk) {
        const t = db();
        const row = { id: t.nextId++, token_hash: tk.tokenHash, user_id: tk.userId, name: tk.name, role: tk.role, created_at: tk.now, expires_at: tk.expiresAt, last_used_at: null, revoked_at: null };
        t.tokens.push(row);
        return toToken(row);
      },
      async findToken(hash) {
        const r = db().tokens.find((x) => x.token_hash === hash);
        return r && { ...toCredential(r), tokenName: r.name, tokenRole: r.role, revokedAt: r.revoked_at };
      },
      async getToken(id) {
        const r = db().tokens.find((x) => x.id === id);
        return r && toToken(r);
      },
      async listTokens(userId, limit, offset) {
        const rows = db().tokens.filter((r) => userId === undefined || r.user_id === userId).sort((a, b) => b.id - a.id);
        return { items: rows.slice(offset, offset + limit).map(toToken), total: rows.length };
      },
      async revokeToken(id, now) {
        const r = db().tokens.find((x) => x.id === id && x.revoked_at === null);
        if (!r) return false;
        r.revoked_at = now;
        return true;
      },
      async revokeTokensOf(userId, now, keepId) {
        const rows = db().tokens.filter((x) => x.user_id === userId && x.revoked_at === null && x.id !== keepId);
        for (const r of rows) r.revoked_at = now;
        return rows.map((r) => r.id).sort((a, b) => a - b);
      },
      async touchToken(id, now) {
        const r = db().tokens.find((x) => x.id === id);
        if (r) r.last_used_at = now;
      },
    };
  }

  get rollouts(): RolloutStore {
    const db = () => this.check();
    const view = (r: Tables['rollouts'][number]): Rollout => {
      const { lease_owner: _o, lease_expires_at: _e, ...rollout } = copy(r);
      rollout.machines.sort((a, b) => a.wave - b.wave || a.machine_id - b.machine_id);
      return rollout;
    };
    return {
      async create(r: NewRollout, now) {
        const t = db();
        const active = isRolloutActive(r.state);
        if (active && r.machines.some((m) => t.locks[m.machine_id] !== undefined)) {
          throw new DuplicateKeyError('a machine of this rollout is in another active rollout');
        }
        const { machines, ...settings } = r;
        const id = t.nextId++;
        const row = {
          ...copy(settings),
          id,
          wave: 0,
          version: 1,
          resume_state: null,
          message: null,
          created_at: now,
          updated_at: now,
          finished_at: null,
          lease_owner: null,
          lease_expires_at: null,
          machines: machines.map((m): RolloutMachine => ({ ...m, message: null, started_at: null, deadline_at: null, finished_at: null, updated_at: now })),
        };
        t.rollouts.push(row);
        if (active) for (const m of machines) t.locks[m.machine_id] = id;
        return view(row);
      },
      async get(id) {
        const r = db().rollouts.find((x) => x.id === id);
        return r && view(r);
      },
      async list(limit, offset) {
        const rows = [...db().rollouts].sort((a, b) => b.id - a.id);
        return { items: rows.slice(offset, offset + limit).map(view), total: rows.length };
      },
      async activeFor(machineIds) {
        const t = db();
        return machineIds
          .filter((id) => t.locks[id] !== undefined)
          .map((id) => ({ rollout_id: t.locks[id]!, machine_id: id }))
          .sort((a, b) => a.rollout_id - b.rollout_id || a.machine_id - b.machine_id);
      },
      async activeBuildIds() {
        const ids = new Set<number>();
        for (const r of db().rollouts) {
          if (!isRolloutActive(r.state)) continue;
          for (const m of r.machines) {
            if (m.from_build_id !== null) ids.add(m.from_build_id);
            if (m.to_build_id !== null) ids.add(m.to_build_id);
          }
        }
        return [...ids].sort((a, b) => a - b);
      },
      async update(id, version, patch: RolloutPatch, now) {
        const t = db();
        const r = t.rollouts.find((x) => x.id === id);
        if (!r || r.version !== version) return false;
        Object.assign(r, copy(patch), { version: version + 1, updated_at: now });
        if (patch.state !== undefined && !isRolloutActive(patch.state)) {
          for (const [machine, rollout] of Object.entries(t.locks)) if (rollout === id) delete t.locks[Number(machine)];
        }
        return true;
      },
      async updateMachine(id, m) {
        const r = db().rollouts.find((x) => x.id === id);
        const row = r?.machines.find((x) => x.machine_id === m.machine_id);
        if (!row) return;
        const { machine_id: _m, service_tag: _s, wave: _w, from_build_id: _f, ...fields } = copy(m);
        Object.assign(row, fields);
      },
      async claimLeases(owner, leaseUntil, now) {
        const ids: number[] = [];
        for (const r of db().rollouts) {
          if (!isRolloutActive(r.state)) continue;
          if (r.lease_owner !== null && r.lease_owner !== owner && (r.lease_expires_at ?? '') >= now) continue;
          r.lease_owner = owner;
          r.lease_expires_at = leaseUntil;
          ids.push(r.id);
        }
        return ids.sort((a, b) => a - b);
      },
      async releaseLeases(owner) {
        for (const r of db().rollouts) {
          if (r.lease_owner === owner) Object.assign(r, { lease_owner: null, lease_expires_at: null });
        }
      },
    };
  }

  get power(): PowerStore {
    const db = () => this.check();
    const find = (id: number) => db().power.find((p) => p.machine_id === id);
    return {
      async get(machineId) {
        const p = find(machineId);
        return p && copy(p);
      },
      async setBmc(machineId, bmc, rebootOnPublish, _now) {
        const t = db();
        let p = find(machineId);
        if (!p) {
          p = { machine_id: machineId, bmc: null, power_state: 'unknown', checked_at: null, reboot_on_publish: false, reboot_build_id: null };
          t.power.push(p);
        }
        p.bmc = copy(bmc);
        if (rebootOnPublish !== undefined) p.reboot_on_publish = rebootOnPublish;
        return copy(p);
      },
      async clearBmc(machineId, _now) {
        const p = find(machineId);
        if (!p || !p.bmc) return false;
        Object.assign(p, { bmc: null, power_state: 'unknown', checked_at: null, reboot_on_publish: false });
        return true;
      },
      async recordState(machineId, state, checkedAt) {
        const p = find(machineId);
        if (p) Object.assign(p, { power_state: state, checked_at: checkedAt });
      },
      async listWithBmc() {
        const t = db();
        // Like the SQL join: a record whose machine is gone is not listed.
        return copy(
          t.power
            .filter((p) => p.bmc !== null)
            .flatMap((p) => {
              const m = t.machines.find((r) => r.id === p.machine_id);
              return m ? [{ ...p, service_tag: m.service_tag }] : [];
            })
            .sort((a, b) => a.machine_id - b.machine_id),
        );
      },
      async states(ids) {
        return db()
          .power.filter((p) => p.bmc !== null && ids.includes(p.machine_id))
          .sort((a, b) => a.machine_id - b.machine_id)
          .map((p) => ({ machine_id: p.machine_id, power_state: p.power_state, checked_at: p.checked_at }));
      },
      async claimReboot(machineId, buildId) {
        const p = find(machineId);
        if (!p || !p.bmc || !p.reboot_on_publish || (p.reboot_build_id !== null && p.reboot_build_id >= buildId)) return false;
        p.reboot_build_id = buildId;
        return true;
      },
    };
  }

  get bmcCredentialSets(): BmcCredentialSetStore {
    const db = () => this.check();
    return {
      async list() {
        return copy([...db().credentialSets].sort((a, b) => compare(a.name, b.name)));
      },
      async findByName(name) {
        const s = db().credentialSets.find((x) => x.name === name);
        return s && copy(s);
      },
      async findById(id) {
        const s = db().credentialSets.find((x) => x.id === id);
        return s && copy(s);
      },
      async insert(set) {
        const t = db();
        if (t.credentialSets.some((x) => x.name === set.name)) throw new DuplicateKeyError(`bmc credential set ${set.name} already exists`);
        const row = { id: t.nextId++, name: set.name, username: set.username, password_sealed: set.passwordSealed, created_at: set.now, updated_at: set.now };
        t.credentialSets.push(row);
        return copy(row);
      },
      async update(id, changes) {
        const s = db().credentialSets.find((x) => x.id === id);
        if (!s) return undefined;
        if (changes.username !== undefined) s.username = changes.username;
        if (changes.passwordSealed !== undefined) s.password_sealed = changes.passwordSealed;
        s.updated_at = changes.now;
        return copy(s);
      },
      async delete(id) {
        const t = db();
        const before = t.credentialSets.length;
        t.credentialSets = t.credentialSets.filter((x) => x.id !== id);
        return t.credentialSets.length < before;
      },
      async usageCount(id) {
        return db().power.filter((p) => p.bmc?.credential_set_id === id).length;
      },
    };
  }

  get profiles(): ProfileStore {
    const db = () => this.check();
    return {
      async list() {
        const t = db();
        return [...t.profiles]
          .sort((a, b) => compare(a.name, b.name))
          .map((p) => {
            const users = t.machines.filter((m) => m.profile === p.name);
            return { ...copy(p), machines: users.length, out_of_date: users.filter((m) => isOutOfDate(m.desired_hash, m.built_hash)).length };
          });
      },
      async findByName(name) {
        const p = db().profiles.find((x) => x.name === name);
        return p && copy(p);
      },
      async insert(name, fields, now) {
        const t = db();
        if (t.profiles.some((x) => x.name === name)) throw new DuplicateKeyError(`profile ${name} exists`);
        const row: Profile = { id: t.nextId++, name, ...copy(fields), created_at: now, updated_at: now };
        t.profiles.push(row);
        return copy(row);
      },
      async update(name, fields, now) {
        const p = db().profiles.find((x) => x.name === name);
        if (!p) return undefined;
        Object.assign(p, copy(fields), { updated_at: now });
        return copy(p);
      },
      async delete(name) {
        const t = db();
        if (t.machines.some((m) => m.profile === name)) throw new StillReferencedError(`profile ${name} is still used`);
        const before = t.profiles.length;
        t.profiles = t.profiles.filter((x) => x.name !== name);
        return t.profiles.length < before;
      },
      async usageCount(name) {
        return db().machines.filter((m) => m.profile === name).length;
      },
    };
  }

  get rules(): RuleStore {
    const db = () => this.check();
    const nameTaken = (t: Tables, name: string, exceptId?: number) => t.rules.some((r) => r.name === name && r.id !== exceptId);
    return {
      async list() {
        return copy([...db().rules].sort((a, b) => a.priority - b.priority || a.id - b.id));
      },
      async findById(id) {
        const r = db().rules.find((x) => x.id === id);
        return r && copy(r);
      },
      async insert(fields, now) {
        const t = db();
        if (nameTaken(t, fields.name)) throw new DuplicateKeyError(`rule ${fields.name} exists`);
        const row: Rule = { id: t.nextId++, ...copy(fields), created_at: now, updated_at: now };
        t.rules.push(row);
        return copy(row);
      },
      async update(id, fields, now) {
        const t = db();
        const r = t.rules.find((x) => x.id === id);
        if (!r) return undefined;
        if (nameTaken(t, fields.name, id)) throw new DuplicateKeyError(`rule ${fields.name} exists`);
        Object.assign(r, copy(fields), { updated_at: now });
        return copy(r);
      },
      async delete(id) {
        const t = db();
        const before = t.rules.length;
        t.rules = t.rules.filter((x) => x.id !== id);
        return t.rules.length < before;
      },
      async countUsingProfile(name) {
        return db().rules.filter((r) => r.set.profile === name).length;
      },
    };
  }

  get settings(): SettingStore {
    const db = () => this.check();
    return {
      async get(name) {
        return db().settings[name];
      },
      async put(name, value) {
        db().settings[name] = value;
      },
    };
  }

  get builderPresence(): BuilderPresenceStore {
    const db = () => this.check();
    return {
      async put(presence) {
        db().builderPresence[presence.name] = copy(presence);
      },
      async remove(name) {
        delete db().builderPresence[name];
      },
      async list() {
        return Object.values(db().builderPresence)
          .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
          .map(copy);
      },
      async prune(before) {
        const t = db();
        const gone = Object.values(t.builderPresence).filter((p) => p.lastSeenAt < before);
        for (const p of gone) delete t.builderPresence[p.name];
        return gone.length;
      },
    };
  }

  get rateLimits(): RateLimitStore {
    const db = () => this.check();
    const id = (bucket: string, key: string) => `${bucket} ${key}`;
    return {
      // The arithmetic of SqlRateLimitStore.take, in the same order.
      async take(bucket, key, capacity, refillSeconds, now) {
        const t = db();
        const refillMs = refillSeconds * 1000;
        const row = t.rateLimits[id(bucket, key)];
        const refilled = row ? Math.min(capacity, row.tokens + (Math.max(0, now - row.updatedAt) * capacity) / refillMs) : capacity;
        const allowed = refilled >= 1;
        const tokens = allowed ? refilled - 1 : refilled;
        t.rateLimits[id(bucket, key)] = { tokens, updatedAt: Math.max(row?.updatedAt ?? now, now), expiresAt: now + ((capacity - tokens) * refillMs) / capacity };
        return allowed ? { allowed: true } : { allowed: false, retryAfterMs: Math.max(1, Math.ceil(((1 - tokens) * refillMs) / capacity)) };
      },
      async refund(bucket, key, capacity) {
        const row = db().rateLimits[id(bucket, key)];
        if (row) row.tokens = Math.min(capacity, row.tokens + 1);
      },
      async reset(bucket, key) {
        delete db().rateLimits[id(bucket, key)];
      },
      async sweep(now) {
        const t = db();
        const expired = Object.keys(t.rateLimits).filter((k) => t.rateLimits[k]!.expiresAt <= now);
        for (const k of expired) delete t.rateLimits[k];
        return expired.length;
      },
    };
  }
}

function searchText(m: MachineRow): string {
  const text = [m.service_tag, m.hostname ?? '', m.mac_address, m.hardware.manufacturer ?? '', m.hardware.model ?? ''].join(' ').toLowerCase();
  const cabling = cablingSearchText(m.hardware);
  return cabling === '' ? text : `${text} ${cabling}`;
}

function compare(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  return (a as string | number) < (b as string | number) ? -1 : 1;
}

function countBy(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

function newDelivery(t: Tables, webhookId: number, eventId: number, type: string, payload: string, deliveryId: string, now: string): DeliveryRow {
  return {
    id: t.nextId++,
    webhook_id: webhookId,
    delivery_id: deliveryId,
    event_id: eventId,
    event_type: type,
    payload,
    status: 'pending',
    attempts: 0,
    next_attempt_at: now,
    lease_owner: null,
    lease_until: null,
    last_status_code: null,
    last_error: null,
    response_excerpt: null,
    created_at: now,
    delivered_at: null,
  };
}

/** The configuration fields a patch writes, as the SQL stores do: the whole map sets the entry text; the text alone is a one-file map. */
function configFields(patch: MachinePatch): Pick<Machine, 'nixos_config' | 'nixos_files'> | Record<string, never> {
  if (patch.nixos_files !== undefined) {
    const files = patch.nixos_files === null ? null : copy(patch.nixos_files);
    return { nixos_files: files, nixos_config: files === null ? null : (files['configuration.nix'] ?? null) };
  }
  if (patch.nixos_config !== undefined) return { nixos_config: patch.nixos_config, nixos_files: patch.nixos_config === null ? null : { 'configuration.nix': patch.nixos_config } };
  return {};
}
