import { randomBytes } from 'node:crypto';
import { BootTokenMinter } from './boot-token.ts';
import { ConflictError, ForbiddenError, InvalidInputError, NotFoundError, UnprocessableError } from './errors.ts';
import { assertBuildTransition, assertMachineTransition, isBuildFinished, type BuildStatus, type MachineStatus } from './lifecycle.ts';
import type { Notifier } from './notifier.ts';
import { DuplicateKeyError, type BuildRecord, type Storage, type Stores } from './ports.ts';
import { nowIso, type Actor, type BootHealth, type Build, type BuildNixpkgs } from './types.ts';
import { assertBootHealth } from './boot-health.ts';
import { singleFileConfig } from './config-files.ts';
import { assertServiceTag } from './validation.ts';
import { effectiveConfigHash, machineFilesOf } from './config-hash.ts';


/** How many times a build is started before a lost builder fails it instead of retrying it. */
export const MAX_ATTEMPTS = 2;

/** Largest log kept per build; later output is dropped with a note. */
export const MAX_LOG_BYTES = 4 * 1024 * 1024;

/** The configuration built when a machine has none: an empty NixOS module. */
export const EMPTY_NIXOS_CONFIG = '{ ... }:\n{\n}\n';

/** What a lease sweep did to one build. */
export interface SweepOutcome {
  id: number;
  /** The build's machine, e.g. `ABC123`. */
  serviceTag: string;
  action: 'retried' | 'failed';
}

/**
 * What an image sends when it came up: its build and the per-build token from its kernel line, and the
 * result of its profile's health check when the build has one.
 */
export interface BootedReport {
  build_id: number;
  token: string;
  health?: BootHealth;
}

/** What the server recorded, as the answer to the image. */
export interface BootedRecord {
  machine_id: number;
  build_id: number;
  booted_at: string;
}

/** What a successful build leaves behind. */
export interface PublishedImage {
  /** e.g. `/nix/store/…-metal-netboot` */
  storePath: string;
  artifactUrl: string;
  note: string;
  /** The nixpkgs the entry recorded in the result's boot.json, if it did. */
  nixpkgs?: Partial<BuildNixpkgs> | undefined;
  /** Seconds the image took to report booted in the builder's VM (METAL_BUILD_BOOT_CHECK), if it was checked. */
  bootCheckSeconds?: number | undefined;
}

/**
 * The one owner of every build transition and of the machine transitions builds cause: request,
 * claim, log, success, failure, release, cancellation, lease loss, and the booted report. Each is
 * one transaction with its event, followed by the in-process signal that wakes builders and pages
 * (forwarded to other processes by the storage's relay where the database supports it).
 */
export class BuildLifecycle {
  /** The nixpkgs pin as it enters configuration hashes ('' for the host's `<nixpkgs>`). */
  readonly nixpkgs: string;

  constructor(
    private readonly storage: Storage,
    private readonly notifier: Notifier,
    options: { nixpkgs?: string } = {},
  ) {
    this.nixpkgs = options.nixpkgs ?? '';
  }

  async get(id: number): Promise<Build> {
    const build = await this.storage.builds.findById(id);
    if (!build) throw new NotFoundError(`build ${id} not found`);
    return build;
  }

  listForMachine(machineId: number, limit = 50, offset = 0): Promise<{ items: Build[]; total: number }> {
    return this.storage.builds.listForMachine(machineId, limit, offset);
  }

  /**
   * Creates a pending build of the machine's current configuration; the machine becomes building. A
   * held build (a rollout's) leaves the machine as it is: it keeps booting its image meanwhile, and
   * the build's success publishes the image without pointing the machine at it.
   */
  async request(machineId: number, actor: Actor, options: { hold?: boolean; rolloutId?: number } = {}): Promise<Build> {
    const build = await this.storage.transaction((tx) => this.requestIn(tx, machineId, actor, options));
    this.signalRequested(build);
    return build;
  }

  /**
   * `request` inside a caller's transaction (enrollment rules, bulk builds); the caller calls
   * `signalRequested` once it committed. The build snapshots the machine's files, hostname and
   * profile (module and kernel parameters) as they are now, with the hash of all of it.
   */
  async requestIn(tx: Stores, machineId: number, actor: Actor, options: { hold?: boolean; rolloutId?: number } = {}): Promise<Build> {
    const hold = options.hold === true;
    const machine = await tx.machines.findById(machineId);
    if (!machine) throw new NotFoundError(`machine ${machineId} not found`);
    if (!machine.hostname) {
      throw new UnprocessableError(`machine ${machine.service_tag} has no hostname; set one before building`);
    }
    const active = await tx.builds.findActiveForMachine(machine.id);
    if (active) throw new ConflictError(`machine ${machine.service_tag} already has build ${active.id} ${active.status}`);
    if (!hold) {
      // A build of its own would point the machine at a new image in the middle of its rollout.
      const held = await tx.rollouts.activeFor([machine.id]);
      if (held.length > 0) throw new ConflictError(`machine ${machine.service_tag} is in rollout ${held[0]!.rollout_id}; wait for it, or cancel it, before building it alone`);
      assertMachineTransition(machine.status, 'building', 'build');
    }
    const profile = machine.profile === null ? null : ((await tx.profiles.findByName(machine.profile)) ?? null);
    const now = nowIso();
    let created: Build;
    try {
      created = await tx.builds.create(
        {
          machine_id: machine.id,
          config: machine.nixos_config ?? EMPTY_NIXOS_CONFIG,
          config_files: machine.nixos_config === null ? singleFileConfig(EMPTY_NIXOS_CONFIG) : (machine.nixos_files ?? singleFileConfig(machine.nixos_config)),
          hostname: machine.hostname,
          service_tag: machine.service_tag,
          boot_token: randomBytes(24).toString('base64url'),
          image_key: randomBytes(16).toString('base64url'),
          hold,
          rollout_id: options.rolloutId ?? null,
          profile_name: profile?.name ?? null,
          profile_config: profile?.nixos_config ?? null,
          kernel_params: profile?.kernel_params ?? [],
          health_check: profile?.health_check ?? null,
          skip_boot_check: profile?.skip_boot_check ?? false,
          config_hash: effectiveConfigHash({ profile, machineConfig: machineFilesOf(machine), hostname: machine.hostname, nixpkgs: this.nixpkgs }),
        },
        now,
      );
    } catch (err) {
      if (err instanceof DuplicateKeyError) throw new ConflictError(err.message);
      throw err;
    }
    await tx.machines.update(machine.id, hold ? { last_build_id: created.id } : { status: 'building', last_build_id: created.id }, now);
    await tx.events.record({
      kind: 'build.requested',
      machineId: machine.id,
      buildId: created.id,
      actor,
      message: `build ${created.id} requested for ${machine.hostname}${profile ? ` (profile ${profile.name})` : ''}${hold ? ` (held for rollout ${options.rolloutId ?? '?'}: published without being booted)` : ''}`,
      ...(hold ? { data: { hold: true, rollout_id: options.rolloutId ?? null } } : {}),
    });
    return created;
  }

  /** Wakes builders and pages after a build was requested (once its transaction committed). */
  signalRequested(build: Build): void {
    this.notifier.emit('build.requested', build.id);
    this.notifier.emit('machine.updated', build.machine_id);
  }

  /** Stops a pending or running build. The builder running it sees the change and kills nix-build. */
  async cancel(id: number, actor: Actor): Promise<Build> {
    const build = await this.get(id);
    if (isBuildFinished(build.status)) throw new ConflictError(`build ${id} is already ${build.status}`);
    const by = actor.kind === 'system' ? 'the system' : `${actor.kind} ${actor.name}`;
    const cancelled = await this.storage.transaction(async (tx) => {
      const now = nowIso();
      const updated = await tx.builds.transition(id, ['pending', 'building'], 'cancelled', { ...RELEASED, completed_at: now, error: `cancelled by ${by}` }, now);
      if (!updated) throw new ConflictError(`build ${id} finished before it could be cancelled`);
      await settleMachine(tx, updated.machine_id);
      await tx.events.record({ kind: 'build.cancelled', machineId: updated.machine_id, buildId: id, actor, message: `build ${id} cancelled` });
      return updated;
    });
    this.notifier.emit('build.cancelled', id);
    this.signalFinished(id, 'cancelled', cancelled.started_at);
    this.signalChanged(id, cancelled.machine_id);
    return cancelled;
  }

  /** The queue as one builder sees it: everything it does is done as `actor`, holding leases of `leaseMs`. */
  queueFor(actor: Actor, leaseMs: number): BuildQueue {
    return new BuildQueue(this, this.storage, actor, leaseMs);
  }

  /**
   * A fresh single-use token for the kernel line of an image script of `buildId`, signed with the
   * build's own secret: `<issued at>.<nonce>.<signature>`. Minting it touches no storage, so a boot
   * storm costs no writes; the first booted report presenting it is accepted, and no token issued at or
   * before an accepted one is accepted again.
   */
  async issueBootToken(buildId: number, buildSecret: string, now = Date.now()): Promise<string> {
    return this.bootTokenMinter(buildId, buildSecret).mint(now);
  }

  /** Mints tokens of one build over and over (the boot server keeps one per image script it serves). */
  bootTokenMinter(buildId: number, buildSecret: string): BootTokenMinter {
    return new BootTokenMinter(buildId, buildSecret);
  }

  /**
   * Records that a machine booted one of its builds, after checking the build's token in constant
   * time. A wrong token and another machine's build are refused alike, so neither can be probed.
   */
  async recordBooted(tag: string, report: BootedReport): Promise<BootedRecord> {
    const serviceTag = assertServiceTag(tag);
    if (!Number.isSafeInteger(report.build_id) || report.build_id < 1) {
      throw new InvalidInputError('build_id must be a positive whole number', { field: 'build_id' });
    }
    const health = report.health === undefined ? null : assertBootHealth(report.health);
    const refused = () => new ForbiddenError(`boot report refused: build ${report.build_id} of ${serviceTag} does not have this token`);
    const machine = await this.storage.machines.findByServiceTag(serviceTag);
    if (!machine) throw new NotFoundError(`machine ${serviceTag} not found`);
    const facts = await this.storage.builds.bootFacts(report.build_id);
    if (!facts || facts.machineId !== machine.id) throw refused();
    const marker = this.bootTokenMinter(report.build_id, facts.bootToken).verify(report.token, Date.now());
    if (marker === undefined) throw refused();
    const actor: Actor = { kind: 'machine', name: serviceTag };
    const bootedAt = nowIso();
    await this.storage.transaction(async (tx) => {
      // Single use: the build keeps the marker of the last accepted token; only a later one passes.
      if (!(await tx.builds.advanceBootMarker(report.build_id, marker))) throw refused();
      // Booting the image it points at answers a pending reboot request of its agent.
      const current = (await tx.machines.imageBuildId(machine.id)) === report.build_id;
      await tx.machines.update(machine.id, { booted_build_id: report.build_id, booted_at: bootedAt, booted_health: health, ...(current ? { reboot_requested_at: null } : {}) }, bootedAt);
      const checked = health === null ? '' : health.ok ? '; health check passed' : `; health check failed${health.exit_code === null ? '' : ` (exit ${health.exit_code})`}`;
      await tx.events.record({
        kind: 'machine.booted',
        machineId: machine.id,
        buildId: report.build_id,
        actor,
        message: `${serviceTag} booted build ${report.build_id}${checked}`,
        ...(health === null ? {} : { data: { health } }),
      });
    });
    this.notifier.emit('machine.updated', machine.id);
    return { machine_id: machine.id, build_id: report.build_id, booted_at: bootedAt };
  }

  /**
   * Whether the in-image agent of a running boot should reboot now: its token must be the one its
   * booted report was accepted with (the boot now running, so its age does not matter), and the
   * machine must have been pointed at another image with a reboot request. A wrong token and another
   * machine's build are refused alike, as for booted reports.
   */
  async rebootRequested(tag: string, report: BootedReport): Promise<boolean> {
    const serviceTag = assertServiceTag(tag);
    if (!Number.isSafeInteger(report.build_id) || report.build_id < 1) {
      throw new InvalidInputError('build_id must be a positive whole number', { field: 'build_id' });
    }
    const refused = () => new ForbiddenError(`reboot request refused: build ${report.build_id} of ${serviceTag} is not running with this token`);
    const machine = await this.storage.machines.findByServiceTag(serviceTag);
    if (!machine) throw new NotFoundError(`machine ${serviceTag} not found`);
    const facts = await this.storage.builds.bootFacts(report.build_id);
    if (!facts || facts.machineId !== machine.id) throw refused();
    const marker = this.bootTokenMinter(report.build_id, facts.bootToken).verify(report.token, null);
    if (marker === undefined || marker !== (await this.storage.builds.bootMarker(report.build_id))) throw refused();
    const [image, requested] = await Promise.all([this.storage.machines.imageBuildId(machine.id), this.storage.machines.rebootRequestedAt(machine.id)]);
    return requested !== null && image !== report.build_id;
  }

  /** Tells the process a build ended (metrics count it), with how long it ran since it started. */
  signalFinished(buildId: number, result: 'success' | 'failed' | 'cancelled', startedAt: string | null): void {
    const seconds = startedAt === null ? null : Math.max(0, (Date.now() - Date.parse(startedAt)) / 1000);
    this.notifier.emit('build.finished', buildId, result, Number.isFinite(seconds) ? seconds : null);
  }

  /** Wakes followers of the build's log, live pages and boot decisions. */
  signalChanged(buildId: number, machineId?: number): void {
    this.notifier.emit('build.updated', buildId);
    if (machineId !== undefined) this.notifier.emit('machine.updated', machineId);
  }
}

/** Lease fields cleared when a builder lets go of a build. */
const RELEASED = { lease_owner: null, lease_expires_at: null } as const;

/**
 * The build queue as one builder sees it: claiming with a lease, renewing it, appending to the log,
 * and finishing. Every change is a compare-and-set on status and lease owner, so a build that was
 * cancelled or taken over is never overwritten.
 */
export class BuildQueue {
  constructor(
    private readonly lifecycle: BuildLifecycle,
    private readonly storage: Storage,
    /** e.g. `builder:build-01-4242` */
    readonly actor: Actor,
    readonly leaseMs: number,
  ) {}

  get owner(): string {
    return this.actor.name;
  }

  private leaseUntil(): string {
    return new Date(Date.now() + this.leaseMs).toISOString();
  }

  /** Takes the oldest pending build, or returns undefined when there is none. */
  async claimNext(): Promise<BuildRecord | undefined> {
    const record = await this.storage.builds.claimNext(this.owner, this.leaseUntil(), nowIso());
    if (!record) return undefined;
    await this.storage.events.record({
      kind: 'build.started',
      machineId: record.machine_id,
      buildId: record.id,
      actor: this.actor,
      message: `build ${record.id} started by ${this.owner} (attempt ${record.attempts})`,
    });
    this.lifecycle.signalChanged(record.id, record.machine_id);
    return record;
  }

  /** Extends the lease; false when the build is no longer this builder's to run (cancelled, taken over). */
  renew(id: number): Promise<boolean> {
    return this.storage.builds.renewLease(id, this.owner, this.leaseUntil());
  }

  /** Appends output to the log of a build this builder holds. */
  appendLog(id: number, text: string): Promise<void> {
    return this.storage.builds.appendLog(id, text, nowIso(), this.owner);
  }

  /** An earlier successful build with this store path, whose files can be linked instead of copied. */
  findPublishedStorePath(storePath: string, exceptId: number): Promise<number | undefined> {
    return this.storage.builds.findPublishedStorePath(storePath, exceptId);
  }

  /** The status of each of these builds that exists (for sweeping work directories). */
  statusesOf(ids: number[]): Promise<Array<{ id: number; status: BuildStatus }>> {
    return this.storage.builds.statusesOf(ids);
  }

  /** The machine's currently published build, if any. */
  imageBuildId(machineId: number): Promise<number | null> {
    return this.storage.machines.imageBuildId(machineId);
  }

  /**
   * Marks a build this builder holds `success` and its machine `ready` with this image. False when
   * the build was cancelled or taken over meanwhile (nothing is changed).
   */
  succeed(id: number, image: PublishedImage): Promise<boolean> {
    return this.finishHeld(id, (tx, record) => finish(tx, record, this.actor, { status: 'success', image }), 'success');
  }

  /**
   * Fails a build with a one-line reason, which also goes at the top of its log; the machine becomes
   * `failed` and keeps its published image. False when the build is no longer this builder's.
   */
  fail(id: number, reason: string): Promise<boolean> {
    return this.finishHeld(id, (tx, record) => finish(tx, record, this.actor, { status: 'failed', reason }), 'failed');
  }

  /** Hands a build this builder holds back to the queue (graceful stop); the attempt is not counted. */
  release(id: number, note: string): Promise<boolean> {
    return this.finishHeld(id, (tx, record) =>
      requeue(tx, record, this.actor, { note, attempts: Math.max(0, record.attempts - 1), kind: 'build.released', message: note }),
    );
  }

  /**
   * Finds builds whose builder stopped renewing its lease: each is put back in the queue once, and
   * failed, saying the builder was lost, when it has used its attempts.
   */
  async sweepExpired(): Promise<SweepOutcome[]> {
    const outcomes: SweepOutcome[] = [];
    for (const id of await this.storage.builds.expiredLeases(nowIso(), 100)) {
      const outcome = await this.storage.transaction(async (tx): Promise<(SweepOutcome & { startedAt?: string | null }) | undefined> => {
        const record = await tx.builds.findRecord(id);
        if (!record || record.status !== 'building' || record.lease_expires_at === null || record.lease_expires_at >= nowIso()) return undefined;
        const lost = `builder ${record.lease_owner ?? '(unknown)'} was lost (its lease expired at ${record.lease_expires_at})`;
        if (record.attempts >= MAX_ATTEMPTS) {
          const failed = await finish(tx, record, this.actor, { status: 'failed', reason: `${lost} after ${record.attempts} attempts` });
          return failed ? { id, serviceTag: record.service_tag, action: 'failed', startedAt: record.started_at } : undefined;
        }
        const retried = await requeue(tx, record, this.actor, {
          note: `${lost}; the build is tried again`,
          kind: 'build.retried',
          message: `${lost}; build ${id} is tried again`,
        });
        return retried ? { id, serviceTag: record.service_tag, action: 'retried' } : undefined;
      });
      if (!outcome) continue;
      if (outcome.action === 'failed') this.lifecycle.signalFinished(id, 'failed', outcome.startedAt ?? null);
      outcomes.push({ id: outcome.id, serviceTag: outcome.serviceTag, action: outcome.action });
    }
    return outcomes;
  }

  /** Runs `step` on a build this builder still holds, in one transaction, then signals the change. */
  private async finishHeld(
    id: number,
    step: (tx: Stores, record: BuildRecord) => Promise<boolean>,
    result?: 'success' | 'failed',
  ): Promise<boolean> {
    let machineId: number | undefined;
    let startedAt: string | null = null;
    const done = await this.storage.transaction(async (tx) => {
      const record = await tx.builds.findRecord(id);
      if (!record || record.status !== 'building' || record.lease_owner !== this.owner) return false;
      machineId = record.machine_id;
      startedAt = record.started_at;
      return step(tx, record);
    });
    if (done && result) this.lifecycle.signalFinished(id, result, startedAt);
    if (done) this.lifecycle.signalChanged(id, machineId);
    return done;
  }
}

type Outcome = { status: 'success'; image: PublishedImage } | { status: 'failed'; reason: string };

/**
 * Ends a running build with success (the machine becomes ready with this image) or failure (the
 * reason heads the log; a building machine becomes failed and keeps its image), with its event.
 */
async function finish(tx: Stores, record: BuildRecord, actor: Actor, outcome: Outcome): Promise<boolean> {
  const id = record.id;
  assertBuildTransition(record.status, outcome.status, `build ${id}`);
  const now = nowIso();
  const fields =
    outcome.status === 'success'
      ? { store_path: outcome.image.storePath, artifact_url: outcome.image.artifactUrl, error: null, boot_check_seconds: outcome.image.bootCheckSeconds ?? null, ...nixpkgsFields(outcome.image.nixpkgs) }
      : { error: oneLine(outcome.reason) };
  const done = await tx.builds.transition(id, [record.status], outcome.status, { ...fields, ...RELEASED, completed_at: now }, now);
  if (!done) return false;
  // The reason heads the log as one `error:` line (nix's own line already starts so: not twice).
  if (outcome.status === 'failed') await tx.builds.prependLog(id, `error: ${(fields.error ?? '').replace(/^error:\s*/, '')}\n`);
  const machine = await tx.machines.findById(record.machine_id);
  if (outcome.status === 'success' && machine && record.hold) {
    // A held build: its image is published, the machine keeps booting what it booted.
  } else if (outcome.status === 'success' && machine) {
    assertMachineTransition(machine.status, 'ready', `build ${id}`);
    await tx.machines.update(machine.id, { status: 'ready', image_build_id: id }, now);
  } else if (outcome.status === 'failed' && machine?.status === 'building') {
    await tx.machines.update(machine.id, { status: 'failed' }, now);
  }
  await tx.events.record(
    outcome.status === 'success'
      ? {
          kind: 'build.succeeded',
          machineId: record.machine_id,
          buildId: id,
          actor,
          message: record.hold ? `${outcome.image.note} (held: the machine is pointed at it by its rollout)` : outcome.image.note,
          data: {
            store_path: outcome.image.storePath,
            ...(outcome.image.nixpkgs ? { nixpkgs: outcome.image.nixpkgs } : {}),
            ...(outcome.image.bootCheckSeconds !== undefined ? { boot_check_seconds: outcome.image.bootCheckSeconds } : {}),
            ...(record.hold ? { hold: true } : {}),
          },
        }
      : { kind: 'build.failed', machineId: record.machine_id, buildId: id, actor, message: `build ${id} failed: ${fields.error}` },
  );
  return true;
}

/** The build columns of the nixpkgs a result recorded (null for what it did not say). */
function nixpkgsFields(n: Partial<BuildNixpkgs> | undefined) {
  return {
    nixpkgs_version: n?.version ?? null,
    nixpkgs_revision: n?.revision ?? null,
    nixpkgs_source: n?.source ?? null,
    nixpkgs_sha256: n?.sha256 ?? null,
  };
}

/** Puts a running build back in the queue with a note in its log and an event. */
async function requeue(
  tx: Stores,
  record: BuildRecord,
  actor: Actor,
  what: { note: string; kind: string; message: string; attempts?: number },
): Promise<boolean> {
  const now = nowIso();
  const fields = { ...RELEASED, ...(what.attempts !== undefined ? { attempts: what.attempts } : {}) };
  const done = await tx.builds.transition(record.id, ['building'], 'pending', fields, now);
  if (!done) return false;
  await tx.builds.appendLog(record.id, `\n${what.note}\n`, now);
  await tx.events.record({ kind: what.kind, machineId: record.machine_id, buildId: record.id, actor, message: what.message });
  return true;
}

/**
 * After a build ends without publishing (cancelled), the machine returns to where it stood: ready
 * when it still has an image, else configured or enrolled.
 */
async function settleMachine(tx: Stores, machineId: number): Promise<void> {
  const machine = await tx.machines.findById(machineId);
  if (!machine || machine.status !== 'building') return;
  const status: MachineStatus = (await tx.machines.imageBuildId(machineId))
    ? 'ready'
    : machine.hostname && (machine.nixos_config || machine.profile)
      ? 'configured'
      : 'enrolled';
  await tx.machines.update(machineId, { status }, nowIso());
}

/** The first line of a message, trimmed to a readable length. */
export function oneLine(text: string): string {
  const first = text.split('\n').map((l) => l.trim()).find((l) => l !== '') ?? 'unknown error';
  return first.length > 500 ? `${first.slice(0, 497)}...` : first;
}

