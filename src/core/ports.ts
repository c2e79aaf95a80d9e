import type { BuildStatus, MachineStatus } from './lifecycle.ts';
import type {
  ApiToken,
  Actor,
  BmcCredentialSet,
  Build,
  Credential,
  Event,
  Hardware,
  Machine,
  MachinePower,
  PowerState,
  Role,
  StoredBmc,
  User,
  UserWithHash,
} from './types.ts';

// The ports of the core: what the domain needs from storage, named for their role. src/storage/
// implements them over SQLite and PostgreSQL; tests implement them in memory (test/support/).

/** What the registration agent reports. */
export interface Enrollment {
  service_tag: string;
  mac_address: string;
  hardware: Hardware;
}

export interface MachineFilter {
  status?: MachineStatus;
  /** Matches service tag, hostname, MAC and model, case-insensitively. */
  search?: string;
  limit: number;
  offset: number;
  /** Column to sort by; default `id`. */
  sort?: 'id' | 'service_tag' | 'hostname' | 'status' | 'last_seen_at' | 'updated_at';
  order?: 'asc' | 'desc';
}

/** The fields of a machine that changes write. */
export interface MachinePatch {
  hostname?: string | null;
  description?: string | null;
  nixos_config?: string | null;
  status?: MachineStatus;
  last_build_id?: number | null;
  /** The build whose image `machines/<tag>` points to, i.e. what the machine boots. */
  image_build_id?: number | null;
  booted_build_id?: number | null;
  booted_at?: string | null;
}

/** One machine's row as the fleet summary reads it (hardware as stored JSON text). */
export interface SummaryRow {
  status: string;
  manufacturer: string | null;
  model: string | null;
  hardware: string;
}

/** How a boot script request names a machine. */
export type BootKey = 'service_tag' | 'mac_address' | 'system_uuid';

/** The few facts about a machine a boot decision needs. */
export interface BootTarget {
  id: number;
  /** e.g. `ABC123` */
  serviceTag: string;
  /** e.g. `building` */
  status: string;
  /** The build whose image the machine boots, if one is published. */
  imageBuildId: number | null;
}

/** A published build's owner and the token on its kernel line. */
export interface BuildBootFacts {
  machineId: number;
  bootToken: string;
}

/** A machine as the boot server's in-memory table holds it, with its place in the change feed. */
export interface BootRow extends BootTarget {
  /** e.g. `52:54:00:12:34:56` */
  macAddress: string;
  /** Lower-case SMBIOS UUID, if known. */
  systemUuid: string | null;
  /** The kernel-line token of the published build (`imageBuildId`), if any. */
  bootToken: string | null;
  /** Grows with every change to the machine (the change feed's cursor). */
  version: number;
}

/** What changed since a cursor: machines written (whole rows) and machines deleted. */
export interface BootChanges {
  rows: BootRow[];
  deleted: Array<{ id: number; version: number }>;
}

/** The boot server's change feed: everything at start, then what changed after a version. */
export interface BootFeed {
  /** Every machine (no `since`), or the machines changed or deleted after version `since`. */
  changes(since?: number): Promise<BootChanges>;
  /**
   * Calls `onChange` soon after another process changes a machine (PostgreSQL NOTIFY, or a cheap poll
   * of SQLite's data_version); returns how to stop watching.
   */
  watch(onChange: () => void): Promise<() => Promise<void>>;
}

/** The machines. */
export interface MachineStore {
  /**
   * Inserts a new machine, or refreshes a known one's hardware, MAC and last_seen_at (nothing else).
   * Race-free: concurrent enrollments of one tag yield one row.
   */
  upsertEnrollment(e: Enrollment, now: string): Promise<{ machine: Machine; created: boolean }>;
  findById(id: number): Promise<Machine | undefined>;
  findByServiceTag(tag: string): Promise<Machine | undefined>;
  /** The build whose image the machine boots, if any. */
  imageBuildId(id: number): Promise<number | null>;
  list(filter: MachineFilter): Promise<{ items: Machine[]; total: number }>;
  countByStatus(): Promise<Record<string, number>>;
  update(id: number, patch: MachinePatch, now: string): Promise<Machine>;
  delete(id: number): Promise<void>;
  /** Sets last_seen_at on many machines at once (boot-script requests are coalesced into this). */
  touchLastSeen(ids: number[], now: string): Promise<void>;
  /** The first machine (lowest id) whose `key` equals `value`, as a boot decision needs it. */
  findBootTarget(key: BootKey, value: string): Promise<BootTarget | undefined>;
  /** Every machine's status, vendor, model and hardware, for the fleet summary. */
  summaryRows(): Promise<SummaryRow[]>;
}

/** A new pending build. */
export interface NewBuild {
  machine_id: number;
  config: string;
  hostname: string;
  service_tag: string;
  boot_token: string;
}

/** A build as stored: the API's fields plus what only the builder and boot server see. */
export interface BuildRecord extends Build {
  service_tag: string;
  /** Which builder holds the build and until when (renewed while it works). */
  lease_owner: string | null;
  lease_expires_at: string | null;
  /** Put on the image's kernel line; the image presents it when it reports that it booted. */
  boot_token: string;
  /** e.g. `/nix/store/…-metal-netboot` */
  store_path: string | null;
}

/** Fields a build transition may set besides its status. */
export interface BuildFields {
  error?: string | null;
  artifact_url?: string | null;
  store_path?: string | null;
  completed_at?: string | null;
  lease_owner?: string | null;
  lease_expires_at?: string | null;
  attempts?: number;
}

/** A build line on the overview and machine pages (no log). */
export interface BuildSummary {
  id: number;
  status: string;
  service_tag: string;
  hostname: string;
  error: string | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
}

/** The builds. Every status change is a compare-and-set, so a build that moved on is never overwritten. */
export interface BuildStore {
  /** Inserts a pending build; a second active build of one machine throws DuplicateKeyError. */
  create(b: NewBuild, now: string): Promise<Build>;
  findById(id: number): Promise<Build | undefined>;
  /** The full record; inside a transaction, locked until it ends (PostgreSQL `for update`). */
  findRecord(id: number): Promise<BuildRecord | undefined>;
  /** The machine's pending or running build, if any. */
  findActiveForMachine(machineId: number): Promise<Build | undefined>;
  /** Newest first, without logs. */
  listForMachine(machineId: number, limit: number, offset: number): Promise<{ items: Build[]; total: number }>;
  /** Every build of a machine with its status (to remove its images and stop what runs). */
  statusesForMachine(machineId: number): Promise<Array<{ id: number; status: BuildStatus }>>;
  /** Newest first; `machineId` narrows to one machine. */
  recent(limit: number, machineId?: number): Promise<BuildSummary[]>;
  countByStatus(): Promise<Record<string, number>>;
  /** Moves a build from one of `from` to `to` with `fields`; undefined when it was no longer in `from`. */
  transition(id: number, from: readonly BuildStatus[], to: BuildStatus, fields: BuildFields, now: string): Promise<Build | undefined>;
  /** Takes the oldest pending build for `owner` with a lease until `leaseUntil`, counting an attempt. */
  claimNext(owner: string, leaseUntil: string, now: string): Promise<BuildRecord | undefined>;
  /** Extends the lease; false when the build is no longer `owner`'s running build. */
  renewLease(id: number, owner: string, leaseUntil: string): Promise<boolean>;
  /** Appends to the log; with `owner`, only while that builder holds the running build. */
  appendLog(id: number, text: string, now: string, owner?: string): Promise<void>;
  /** Puts a line in front of the log (a failure's reason). */
  prependLog(id: number, text: string): Promise<void>;
  /** Running builds whose lease expired before `now`, oldest first. */
  expiredLeases(now: string, limit: number): Promise<number[]>;
  /** An earlier successful build with this store path (its files can be linked instead of copied). */
  findPublishedStorePath(storePath: string, exceptId: number): Promise<number | undefined>;
  /** The owner and kernel-line token of a build, for boot reports and scripts. */
  bootFacts(id: number): Promise<BuildBootFacts | undefined>;
}

/** What is recorded about a change. */
export interface NewEvent {
  /** e.g. `machine.enrolled` */
  kind: string;
  machineId?: number | null;
  buildId?: number | null;
  actor: Actor;
  message: string;
  data?: Record<string, unknown>;
}

export interface EventFilter {
  machineId?: number;
  buildId?: number;
  kind?: string;
  /** `user:alice`, `token:ci`, `machine:ABC123`, `system` */
  actor?: string;
  since?: string;
  until?: string;
  limit?: number;
  offset?: number;
}

/** An event line on the dashboard, with its machine's service tag when the machine still exists. */
export interface EventSummary {
  id: number;
  kind: string;
  message: string;
  actor: string;
  created_at: string;
  service_tag: string | null;
}

/** The append-only audit trail. */
export interface EventStore {
  record(event: NewEvent): Promise<void>;
  /** Newest first. */
  list(filter?: EventFilter): Promise<{ items: Event[]; total: number }>;
  /** Newest first, with service tags; `machineId` narrows to one machine. */
  recent(limit: number, machineId?: number): Promise<EventSummary[]>;
}

/** User accounts. */
export interface UserStore {
  count(): Promise<number>;
  countActiveAdmins(): Promise<number>;
  list(limit: number, offset: number): Promise<{ items: User[]; total: number }>;
  findByUsername(username: string): Promise<UserWithHash | undefined>;
  findById(id: number): Promise<UserWithHash | undefined>;
  /** Throws DuplicateKeyError when the username is taken. */
  insert(user: { username: string; role: Role; passwordHash: string; now: string }): Promise<User>;
  update(id: number, changes: { role?: Role; disabled?: boolean; passwordHash?: string; now: string }): Promise<User | undefined>;
  delete(id: number): Promise<boolean>;
}

/** Sign-in sessions and API tokens, both found by the SHA-256 of the presented token. */
export interface CredentialStore {
  insertSession(s: { tokenHash: string; userId: number; address: string | null; now: string; expiresAt: string }): Promise<void>;
  findSession(tokenHash: string): Promise<Credential | undefined>;
  deleteSession(tokenHash: string): Promise<boolean>;
  /** Ends every session of a user, except the one with `keepHash`. */
  deleteSessionsOf(userId: number, keepHash?: string): Promise<void>;
  deleteExpiredSessions(now: string): Promise<void>;
  touchSession(id: number, now: string): Promise<void>;
  insertToken(t: { tokenHash: string; userId: number; name: string; role: Role; now: string; expiresAt: string | null }): Promise<ApiToken>;
  findToken(tokenHash: string): Promise<Credential | undefined>;
  getToken(id: number): Promise<ApiToken | undefined>;
  /** Newest first; only `userId`'s when given. */
  listTokens(userId: number | undefined, limit: number, offset: number): Promise<{ items: ApiToken[]; total: number }>;
  revokeToken(id: number, now: string): Promise<boolean>;
  touchToken(id: number, now: string): Promise<void>;
}

/**
 * Machines' BMCs, power state and reboot-on-publish setting (kept beside the machine row, so a power
 * state refresh is not a change of the machine for the boot change feed).
 */
export interface PowerStore {
  /** The record of a machine; undefined when nothing was ever set for it. */
  get(machineId: number): Promise<MachinePower | undefined>;
  /** Sets (replaces) a machine's BMC and, when given, its reboot-on-publish setting. */
  setBmc(machineId: number, bmc: StoredBmc, rebootOnPublish: boolean | undefined, now: string): Promise<MachinePower>;
  /** Forgets a machine's BMC; its power state becomes `unknown` and reboot-on-publish off. False when it had none. */
  clearBmc(machineId: number, now: string): Promise<boolean>;
  /** Records the state a BMC reported. */
  recordState(machineId: number, state: PowerState, checkedAt: string): Promise<void>;
  /** Every machine with a BMC, by machine id. */
  listWithBmc(): Promise<MachinePower[]>;
  /** Power state of the given machines (those without a record are left out). */
  states(machineIds: number[]): Promise<Array<{ machine_id: number; power_state: PowerState; checked_at: string | null }>>;
  /**
   * Claims the reboot for a published build: true once per build (the first caller, across processes),
   * and only when the machine has a BMC and reboot-on-publish on, and no later build was claimed.
   */
  claimReboot(machineId: number, buildId: number): Promise<boolean>;
}

/** Named BMC credential sets. */
export interface BmcCredentialSetStore {
  list(): Promise<BmcCredentialSet[]>;
  findByName(name: string): Promise<BmcCredentialSet | undefined>;
  findById(id: number): Promise<BmcCredentialSet | undefined>;
  /** Throws DuplicateKeyError when the name is taken. */
  insert(set: { name: string; username: string; passwordSealed: string; now: string }): Promise<BmcCredentialSet>;
  update(id: number, changes: { username?: string; passwordSealed?: string; now: string }): Promise<BmcCredentialSet | undefined>;
  /** False when there was no such set. Sets still referenced by a machine are refused by the caller first. */
  delete(id: number): Promise<boolean>;
  /** How many machines' BMCs reference the set. */
  usageCount(id: number): Promise<number>;
}

/** Every store, bound to one database handle or to one transaction. */
export interface Stores {
  machines: MachineStore;
  builds: BuildStore;
  events: EventStore;
  users: UserStore;
  credentials: CredentialStore;
  power: PowerStore;
  bmcCredentialSets: BmcCredentialSetStore;
}

/** The stores, plus transactions across them and the database's health. */
export interface Storage extends Stores {
  /** True when other processes' changes arrive as notifications (PostgreSQL), not only by polling. */
  readonly notifiesAcrossProcesses: boolean;
  /** Runs `fn` in one transaction over stores bound to it (retried when SQLite reports a busy writer). */
  transaction<T>(fn: (tx: Stores) => Promise<T>): Promise<T>;
  /** Throws when the database does not answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** What the core needs from image storage (implemented in src/images/). */
export interface ImageStore {
  /** Removes a machine's published link and the images of the given builds. */
  removeMachineImages(serviceTag: string, buildIds: number[]): Promise<void>;
}

/** A write that would break a uniqueness rule (a second active build, a taken username). */
export class DuplicateKeyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DuplicateKeyError';
  }
}
