import type { Labels, Selector } from './labels.ts';
import type { Profile, ProfileFields } from './profile.ts';
import type { Rule, RuleFields } from './rule.ts';
import type { Rollout, RolloutMachine, RolloutSettings, RolloutState } from './rollout-machine.ts';
import type { BuildStatus, MachineStatus } from './lifecycle.ts';
import type {
  BootHealth,
  ApiToken,
  Actor,
  BmcCredentialSet,
  Build,
  Credential,
  Event,
  Hardware,
  IdentityConflict,
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

/** A machine as first enrolled, with the identity it owns (decided by the core). */
export interface NewMachine {
  service_tag: string;
  /** As claimed, lower-case, e.g. `52:54:00:12:34:56` */
  mac_address: string;
  hardware: Hardware;
  /** The MAC boot requests find it by (`?mac=`); null when another machine holds it. Unique. */
  identity_mac: string | null;
  /** The SMBIOS UUID boot requests find it by (`?uuid=`), lower-case; null when unknown or held. Unique. */
  system_uuid: string | null;
  identity_conflict: IdentityConflict | null;
}

/** The identity a machine owns, and a pending claim against it. */
export interface MachineIdentity {
  id: number;
  service_tag: string;
  mac_address: string;
  identity_mac: string | null;
  system_uuid: string | null;
  identity_conflict: IdentityConflict | null;
}

/** A machine that holds a MAC or a UUID, and which of the two. */
export interface IdentityHolder {
  id: number;
  service_tag: string;
  mac: boolean;
  uuid: boolean;
}

/** Which machines a listing or a scan takes; every condition given must hold. */
export interface MachineConditions {
  status?: MachineStatus;
  /** Matches service tag, hostname, MAC and model, case-insensitively. */
  search?: string;
  /** Only machines whose labels satisfy it, e.g. parsed from `role=web,rack in (r12,r13)`. */
  selector?: Selector;
  /** Only machines with this profile, e.g. `web`. */
  profile?: string;
  /** Only machines that are (true) or are not (false) out of date (see core/config-hash.ts). */
  outOfDate?: boolean;
}

/** A page of a machine listing, as the API and the dashboard ask for one. */
export interface MachineFilter extends MachineConditions {
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
  /** The entry text alone: the configuration becomes this one file (other files are dropped). */
  nixos_config?: string | null;
  /** The whole configuration (validated); also sets `nixos_config` to its entry. Wins over `nixos_config`. */
  nixos_files?: Record<string, string> | null;
  /** The whole label map (validated by core/labels.ts). */
  labels?: Labels;
  /** The profile's name, or null for none. */
  profile?: string | null;
  /** The hash of what the machine would be built from now (core/config-hash.ts); null: not buildable. */
  desired_hash?: string | null;
  status?: MachineStatus;
  last_build_id?: number | null;
  /**
   * The build whose image `machines/<tag>` points to, i.e. what the machine boots. The store records
   * that build's configuration hash beside it as what the machine was built from.
   */
  image_build_id?: number | null;
  booted_build_id?: number | null;
  booted_at?: string | null;
  booted_health?: BootHealth | null;
  /** Set when the in-image agent should reboot the machine into its (changed) image; cleared when it boots it. */
  reboot_requested_at?: string | null;
  mac_address?: string;
  /** Unique: a write that gives a second machine the same MAC or UUID throws DuplicateKeyError. */
  identity_mac?: string | null;
  system_uuid?: string | null;
  identity_conflict?: IdentityConflict | null;
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
  /** The SMBIOS UUID it owns, lower-case, if any. */
  systemUuid: string | null;
  /** True while an identity claim against it waits for an operator. */
  identityConflict: boolean;
}

/** A published build's owner, the token on its kernel line and the key in its image URLs. */
export interface BuildBootFacts {
  machineId: number;
  bootToken: string;
  /** `builds/<image key>/` in image URLs: random, so images cannot be found by counting build ids. */
  imageKey: string;
}

/** A machine as the boot server's in-memory table holds it, with its place in the change feed. */
export interface BootRow extends BootTarget {
  /** The MAC the machine owns (its identity MAC), e.g. `52:54:00:12:34:56`; null while disputed. */
  macAddress: string | null;
  /** The kernel-line token of the published build (`imageBuildId`), if any. */
  bootToken: string | null;
  /** The random key in the published build's image URLs, if any. */
  imageKey: string | null;
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
   * Inserts a new enrolled machine; undefined when its tag exists (a concurrent enrollment won), and
   * DuplicateKeyError when another machine took its MAC or UUID meanwhile.
   */
  insertEnrolled(m: NewMachine, now: string): Promise<Machine | undefined>;
  /** Re-enrollment: replaces the hardware document and sets last_seen_at, nothing else. */
  refreshHardware(id: number, hardware: Hardware, now: string): Promise<Machine>;
  findIdentity(id: number): Promise<MachineIdentity | undefined>;
  /** The machines owning `mac` (as identity_mac) or `uuid` (as system_uuid). */
  identityHolders(mac: string, uuid: string | null): Promise<IdentityHolder[]>;
  findById(id: number): Promise<Machine | undefined>;
  findByServiceTag(tag: string): Promise<Machine | undefined>;
  /** The build whose image the machine boots, if any. */
  imageBuildId(id: number): Promise<number | null>;
  /** The build each of `ids` boots (null: none), by machine id; ids of no machine are left out. */
  imageBuildIds(ids: readonly number[]): Promise<Map<number, number | null>>;
  list(filter: MachineFilter): Promise<{ items: Machine[]; total: number }>;
  /**
   * Up to `limit` machines meeting `conditions` whose id is above `afterId`, by id: the way through a
   * whole fleet (pass the last id of a page to get the next). Each page costs the same however far in
   * it is, and nothing is counted, where `list` skips `offset` machines and counts every match a page.
   */
  scan(conditions: MachineConditions, afterId: number, limit: number): Promise<Machine[]>;
  countByStatus(): Promise<Record<string, number>>;
  update(id: number, patch: MachinePatch, now: string): Promise<Machine>;
  delete(id: number): Promise<void>;
  /** Sets last_seen_at on many machines at once (boot-script requests are coalesced into this). */
  touchLastSeen(ids: number[], now: string): Promise<void>;
  /** Sets the hash each machine (distinct ids) should be built from, up to 500 a statement; how many were different. */
  setDesiredHashes(hashes: ReadonlyArray<{ id: number; hash: string | null }>, now: string): Promise<number>;
  /** The machine whose tag, owned MAC (identity_mac) or owned UUID equals `value`, as a boot decision needs it. */
  findBootTarget(key: BootKey, value: string): Promise<BootTarget | undefined>;
  /** Every machine's status, vendor, model and hardware, for the fleet summary. */
  summaryRows(): Promise<SummaryRow[]>;
  /**
   * Gives the machine `hostname` unless another machine holds it (false, nothing changed). Inside a
   * transaction a refusal leaves the transaction usable (a savepoint), so the caller tries the next name.
   */
  claimHostname(id: number, hostname: string, now: string): Promise<boolean>;
  /** Hostnames that start with `prefix` and end with `suffix` (to find the numbers a pattern holds). */
  hostnamesLike(prefix: string, suffix: string): Promise<string[]>;
  /** Machines whose image is this build (`image_build_id`): a build they boot is never swept. */
  pointingAt(buildId: number): Promise<number[]>;
  /** When a reboot into a changed image was requested of the machine's agent; null when none is pending. */
  rebootRequestedAt(id: number): Promise<string | null>;
}

/** Profiles. */
export interface ProfileStore {
  /** By name, each with how many machines use it and how many of those are out of date. */
  list(): Promise<Profile[]>;
  findByName(name: string): Promise<Profile | undefined>;
  /** Throws DuplicateKeyError when the name is taken. */
  insert(name: string, fields: Required<ProfileFields>, now: string): Promise<Profile>;
  update(name: string, fields: ProfileFields, now: string): Promise<Profile | undefined>;
  /**
   * False when there was none. Profiles in use are refused by the caller first; one that a machine
   * started to use meanwhile (another transaction) throws StillReferencedError.
   */
  delete(name: string): Promise<boolean>;
  /** How many machines use the profile. */
  usageCount(name: string): Promise<number>;
}

/** Rules applied at enrollment. */
export interface RuleStore {
  /** In the order they are tried: priority, then id. */
  list(): Promise<Rule[]>;
  findById(id: number): Promise<Rule | undefined>;
  /** Throws DuplicateKeyError when the name is taken. */
  insert(fields: RuleFields, now: string): Promise<Rule>;
  /** Throws DuplicateKeyError when the new name is taken. */
  update(id: number, fields: RuleFields, now: string): Promise<Rule | undefined>;
  delete(id: number): Promise<boolean>;
  /** How many rules set the profile. */
  countUsingProfile(name: string): Promise<number>;
}

/** A new pending build. */
export interface NewBuild {
  machine_id: number;
  /** The entry file's text. */
  config: string;
  /** Every file, `configuration.nix` the entry (equal to `config`); absent: `config` is the only file. */
  config_files?: Record<string, string>;
  hostname: string;
  service_tag: string;
  boot_token: string;
  /** 128 random bits, base64url: the build's directory in image URLs. */
  image_key: string;
  /** The machine's profile as it was when the build was requested, if it had one. */
  profile_name?: string | null;
  profile_config?: string | null;
  /** The profile's extra kernel parameters, e.g. `['console=ttyS1,115200']` */
  kernel_params?: string[];
  /** The profile's health check, run by the image after it came up (null: none). */
  health_check?: string | null;
  /** The profile asked its machines' builds to skip the boot check. */
  skip_boot_check?: boolean;
  /** What the build is made from (core/config-hash.ts). */
  config_hash?: string | null;
  /** A rollout's build: published on success without pointing the machine at it. */
  hold?: boolean;
  rollout_id?: number | null;
}

/** A build as stored: the API's fields plus what only the builder and boot server see. */
export interface BuildRecord extends Build {
  service_tag: string;
  /** Which builder holds the build and until when (renewed while it works). */
  lease_owner: string | null;
  lease_expires_at: string | null;
  /** Put on the image's kernel line; the image presents it when it reports that it booted. */
  boot_token: string;
  /** The build's directory in image URLs (`/images/builds/<image key>/`), e.g. `3q2-7wAAAAB3zM1uYm9vdA` */
  image_key: string;
  /** e.g. `/nix/store/…-metal-netboot` */
  store_path: string | null;
  /** The profile module as it was when the build was requested. */
  profile_config: string | null;
  /** Extra kernel parameters from the profile. */
  kernel_params: string[];
  /** The profile asked to skip the boot check (METAL_BUILD_BOOT_CHECK) when the build was requested. */
  skip_boot_check: boolean;
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
  /** What a successful build records about its nixpkgs. */
  nixpkgs_version?: string | null;
  nixpkgs_revision?: string | null;
  nixpkgs_source?: string | null;
  nixpkgs_sha256?: string | null;
  /** Seconds a successful build's image took to report booted in the builder's VM. */
  boot_check_seconds?: number | null;
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
  /** The nixpkgs revision and version the build recorded (success only), e.g. `abcdef0…`, `24.05.1234.abcdef0`. */
  nixpkgs_revision: string | null;
  nixpkgs_version: string | null;
}

/** The build queue as metrics see it. */
export interface BuildQueueStats {
  /** Builds waiting for a builder. */
  pending: number;
  /** When the oldest pending build was requested; null when none waits. */
  oldestPendingAt: string | null;
  /** Distinct builders holding a current lease on a running build. */
  liveBuilders: number;
  /** Distinct builders whose lease on a running build expired (and hold no current one). */
  lostBuilders: number;
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
  /** Queue depth, the oldest pending build and the builders seen through their leases, as of `now`. */
  queueStats(now: string): Promise<BuildQueueStats>;
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
  /**
   * Records `marker` (`<issued at>.<nonce>` of a boot token, which sort as their times) as the build's
   * last accepted boot, only if it is later than the one kept: true once per token.
   */
  advanceBootMarker(id: number, marker: string): Promise<boolean>;
  /** The build whose image URLs use `imageKey`. */
  findIdByImageKey(imageKey: string): Promise<number | undefined>;
  /** Successful builds whose image is still published, newest first within each machine. */
  publishedImages(): Promise<Array<{ id: number; machine_id: number }>>;
  /** Records that retention deleted a successful build's image; false when it was already recorded. */
  markImageSwept(id: number, now: string): Promise<boolean>;
  /** Which of these builds retention has marked swept. */
  sweptAmong(ids: number[]): Promise<number[]>;
  /** `<issued at>.<nonce>` of the build's last accepted boot token (the boot now running), if any. */
  bootMarker(id: number): Promise<string | null>;
  /** The status of each of these builds that exists (unknown ids are left out). */
  statusesOf(ids: number[]): Promise<Array<{ id: number; status: BuildStatus }>>;
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
  /** Revokes every unrevoked token of a user, except the one with id `keepId`; returns the ids revoked. */
  revokeTokensOf(userId: number, now: string, keepId?: number): Promise<number[]>;
  touchToken(id: number, now: string): Promise<void>;
}

/** A webhook endpoint as the API shows it (never its secret). */
export interface Webhook {
  id: number;
  url: string;
  /** Event types delivered, e.g. `machine.enrolled`, `build.*`, or `*` for all. */
  events: string[];
  enabled: boolean;
  /** Since when every attempt to this endpoint has failed; null while it answers. */
  failing_since: string | null;
  /** Why it was disabled automatically, if it was. */
  disabled_reason: string | null;
  created_at: string;
  updated_at: string;
}

export interface NewWebhook {
  url: string;
  events: string[];
  secret: string;
  enabled: boolean;
}

export interface WebhookPatch {
  url?: string;
  events?: string[];
  secret?: string;
  enabled?: boolean;
  failing_since?: string | null;
  disabled_reason?: string | null;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

/** One event on its way to one endpoint, and how its attempts went. */
export interface WebhookDelivery {
  id: number;
  webhook_id: number;
  /** Unique per delivery (X-Metal-Delivery): receivers drop a delivery id they already processed. */
  delivery_id: string;
  event_id: number;
  event_type: string;
  status: DeliveryStatus;
  attempts: number;
  /** When the next attempt is due; null once delivered or given up. */
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  /** The start of the last response's body. */
  response_excerpt: string | null;
  created_at: string;
  delivered_at: string | null;
}

/** A claimed delivery with what sending it needs. */
export interface DueDelivery extends WebhookDelivery {
  /** The JSON body, fixed when the event was recorded. */
  payload: string;
  url: string;
  secret: string;
}

/** What one attempt changed. */
export interface DeliveryAttempt {
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  response_excerpt: string | null;
  delivered_at: string | null;
}

/**
 * Webhook endpoints and their outbox. Deliveries are written by `EventStore.record`, in the
 * transaction of the event, for every enabled endpoint subscribed to its type.
 */
export interface WebhookStore {
  create(w: NewWebhook, now: string): Promise<Webhook>;
  list(): Promise<Webhook[]>;
  get(id: number): Promise<Webhook | undefined>;
  update(id: number, patch: WebhookPatch, now: string): Promise<Webhook | undefined>;
  delete(id: number): Promise<boolean>;
  /** Newest first. */
  deliveries(webhookId: number, limit: number, offset: number): Promise<{ items: WebhookDelivery[]; total: number }>;
  getDelivery(webhookId: number, id: number): Promise<WebhookDelivery | undefined>;
  /** A new pending delivery of the same payload under a new delivery id, due now. */
  redeliver(webhookId: number, id: number, deliveryId: string, now: string): Promise<WebhookDelivery | undefined>;
  /**
   * Leases each enabled endpoint's oldest pending delivery when it is due and not leased by
   * another worker: one delivery in flight per endpoint, in the order the events happened.
   */
  claimDue(owner: string, now: string, leaseUntil: string, limit: number): Promise<DueDelivery[]>;
  /** Records an attempt on a delivery `owner` leased, releasing the lease; false when it lost it. */
  recordAttempt(id: number, owner: string, attempt: DeliveryAttempt): Promise<boolean>;
  /** Deletes delivered and given-up deliveries created before `before`; returns how many. */
  pruneFinished(before: string): Promise<number>;
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
  /** Every machine with a BMC, by machine id, with its service tag (for the poller's log lines). */
  listWithBmc(): Promise<Array<MachinePower & { service_tag: string }>>;
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

/** A new rollout with its machines (each already given its wave and, for unchanged ones, its state). */
export interface NewRollout extends RolloutSettings {
  state: RolloutState;
  waves: number;
  created_by: string;
  machines: Array<Pick<RolloutMachine, 'machine_id' | 'service_tag' | 'wave' | 'from_build_id' | 'to_build_id' | 'state'>>;
}

/** A rollout's fields that the engine writes. */
export type RolloutPatch = Partial<Pick<Rollout, 'state' | 'wave' | 'resume_state' | 'message' | 'finished_at'>>;

/**
 * Rollouts and their machines. While a rollout is active each of its machines is locked to it (a
 * unique key), so a second active rollout over the same machine is refused with DuplicateKeyError.
 */
export interface RolloutStore {
  create(r: NewRollout, now: string): Promise<Rollout>;
  get(id: number): Promise<Rollout | undefined>;
  /** Newest first, with their machines. */
  list(limit: number, offset: number): Promise<{ items: Rollout[]; total: number }>;
  /** Active rollouts holding any of these machines: `{rollout id, machine id}`. */
  activeFor(machineIds: number[]): Promise<Array<{ rollout_id: number; machine_id: number }>>;
  /** Builds an active rollout may still point a machine at (its machines' from and to builds). */
  activeBuildIds(): Promise<number[]>;
  /**
   * Writes the rollout's fields and increments its version, only if its version is still `version`
   * (false otherwise: someone else wrote it first). A final state releases its machines' locks.
   */
  update(id: number, version: number, patch: RolloutPatch, now: string): Promise<boolean>;
  updateMachine(id: number, machine: RolloutMachine): Promise<void>;
  /**
   * Takes or extends `owner`'s lease on every active rollout that is free, expired or already its own,
   * and returns their ids: one server drives a rollout at a time.
   */
  claimLeases(owner: string, leaseUntil: string, now: string): Promise<number[]>;
  /** Gives up `owner`'s leases (a graceful stop). */
  releaseLeases(owner: string): Promise<void>;
}

/** What taking one attempt from a token bucket gave: allowed, or how long until one is back. */
export type RateLimitTake = { allowed: true } | { allowed: false; retryAfterMs: number };

/**
 * Token buckets shared by every process on the database (the sign-in throttle, the enrollment rate
 * limit): `capacity` attempts per key, refilled evenly over `refillSeconds`. Each call is atomic, so
 * two processes taking at once never both get the last attempt. Keys may be of any length (stored
 * hashed); a bucket that would be full again is forgotten (`sweep`). Times are milliseconds.
 */
export interface RateLimitStore {
  /** Takes one attempt for `key` in `bucket` if one is left at `now`. */
  take(bucket: string, key: string, capacity: number, refillSeconds: number, now: number): Promise<RateLimitTake>;
  /** Gives one attempt back (at most up to `capacity`), e.g. the sign-in succeeded. */
  refund(bucket: string, key: string, capacity: number): Promise<void>;
  /** Forgets `key`: its next attempts start from a full bucket. */
  reset(bucket: string, key: string): Promise<void>;
  /** Deletes the buckets that are full again at `now` (as good as absent); returns how many. */
  sweep(now: number): Promise<number>;
}

/** Every store, bound to one database handle or to one transaction. */
export interface Stores {
  machines: MachineStore;
  builds: BuildStore;
  events: EventStore;
  users: UserStore;
  credentials: CredentialStore;
  webhooks: WebhookStore;
  power: PowerStore;
  bmcCredentialSets: BmcCredentialSetStore;
  profiles: ProfileStore;
  rules: RuleStore;
  rateLimits: RateLimitStore;
  rollouts: RolloutStore;
  settings: SettingStore;
  builderPresence: BuilderPresenceStore;
}

/** A running builder as it last said: kept up to date by its heartbeat. */
export interface BuilderPresence {
  /** e.g. `build-01-4242` (host and process id) */
  name: string;
  startedAt: string;
  lastSeenAt: string;
  /** METAL_BUILD_CONCURRENCY: builds it runs at once. */
  concurrency: number;
  /** Builds it was running when it last said. */
  running: number;
  /** METAL_BUILD_BOOT_CHECK: `off`, `booted` or `healthy`. */
  bootCheck: string;
  /** The subject of the certificate it signs kernels for, or null. */
  secureBoot: string | null;
}

/** Which builders are running: each writes its own row (a heartbeat) and removes it when it stops. */
export interface BuilderPresenceStore {
  /** Writes or replaces the builder's row. */
  put(presence: BuilderPresence): Promise<void>;
  remove(name: string): Promise<void>;
  /** Every row, by name. */
  list(): Promise<BuilderPresence[]>;
  /** Removes rows last seen before `before` (builders that died without removing theirs); how many. */
  prune(before: string): Promise<number>;
}

/** Fleet-wide facts by name (e.g. which nixpkgs pin the desired hashes were computed with). */
export interface SettingStore {
  get(name: string): Promise<string | undefined>;
  /** Writes or replaces the value. */
  put(name: string, value: string, now: string): Promise<void>;
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
  /** Points `machines/<tag>` at a published build (null: removes it) with one atomic rename. */
  pointMachineAt(serviceTag: string, buildId: number | null): Promise<void>;
  /** Deletes a build's published image (retention). */
  removeBuildImage(buildId: number): Promise<void>;
  /** The build ids that have a published directory now (`builds/<id>`), in no order. */
  publishedBuildIds(): Promise<number[]>;
}

/** A row could not be deleted: another row still refers to it (a foreign key). */
export class StillReferencedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StillReferencedError';
  }
}

/** A write that would break a uniqueness rule (a second active build, a taken username). */
export class DuplicateKeyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DuplicateKeyError';
  }
}
