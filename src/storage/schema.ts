import type { Generated } from 'kysely';
import type { AuthSchema } from './auth-schema.ts';

/** Table types as stored. Times are ISO 8601 UTC strings; JSON columns are text. */
export interface MachinesTable {
  id: Generated<number>;
  service_tag: string;
  mac_address: string;
  status: string;
  hostname: string | null;
  description: string | null;
  hardware: string;
  /** Copied out of `hardware` for filters and grouping. */
  manufacturer: string | null;
  model: string | null;
  /** SMBIOS UUID this machine owns, lower-case, for boot requests that name it by `?uuid=`. Unique. */
  system_uuid: string | null;
  /** The MAC this machine owns, lower-case, for boot requests that name it by `?mac=`. Unique. */
  identity_mac: string | null;
  /** JSON IdentityConflict: a claim waiting for an operator. */
  identity_conflict: string | null;
  /** What a search matches, lower-cased: `tag hostname mac manufacturer model`, then the LLDP switches and ports (see searchTextOf). */
  search_text: Generated<string>;
  nixos_config: string | null;
  /** JSON file name → text, `configuration.nix` the entry (migration 0012); null: `nixos_config` alone. */
  nixos_files: string | null;
  /** JSON object of label key → value (migration 0011). */
  labels: Generated<string>;
  /** The profile's name (migration 0013). */
  profile: string | null;
  /** Hash of what the machine would be built from now; null when it cannot be built. */
  desired_hash: string | null;
  /** Hash the published image (image_build_id) was built from. */
  built_hash: string | null;
  last_build_id: number | null;
  /** The build whose image `machines/<tag>` points to, i.e. what the machine boots. */
  image_build_id: number | null;
  booted_build_id: number | null;
  booted_at: string | null;
  /** JSON of the health check result sent with the last booted report (migration 0016). */
  booted_health: string | null;
  /** When the in-image agent was asked to reboot into a changed image (migration 0014). */
  reboot_requested_at: string | null;
  enrolled_at: string;
  updated_at: string;
  last_seen_at: string | null;
  /** Set by triggers on every change but a last-seen touch (migration 0008): the boot change feed. */
  change_version: Generated<number | string>;
}

/** Machines deleted, for the boot change feed. */
export interface MachineTombstonesTable {
  machine_id: number;
  change_version: number | string;
}

export interface BuildsTable {
  id: Generated<number>;
  machine_id: number;
  status: string;
  config: string;
  /** JSON file name → text (migration 0012); null: `config` alone. */
  config_files: string | null;
  hostname: string;
  service_tag: string;
  log_output: string;
  error: string | null;
  artifact_url: string | null;
  attempts: number;
  /** Which builder holds the build and until when (renewed while it works). */
  lease_owner: string | null;
  lease_expires_at: string | null;
  /** Put on the image's kernel line; the image presents it when it reports that it booted. */
  boot_token: string;
  /** 128 random bits, base64url: the build's directory in image URLs. Unique. */
  image_key: string;
  /** `<issued at>.<nonce>` of the last boot token accepted for this build (see advanceBootMarker). */
  boot_nonce: string | null;
  /** The Nix store path of the result, e.g. `/nix/store/…-metal-netboot`. */
  store_path: string | null;
  /** The nixpkgs a successful build recorded in its boot.json (migration 0012). */
  nixpkgs_version: string | null;
  nixpkgs_revision: string | null;
  nixpkgs_source: string | null;
  nixpkgs_sha256: string | null;
  /** Seconds the image took to report booted in the builder's VM (migration 0020); null: not checked. */
  boot_check_seconds: number | null;
  /** The machine's profile when the build was requested (migration 0013). */
  profile_name: string | null;
  profile_config: string | null;
  /** JSON list of the profile's extra kernel parameters. */
  kernel_params: Generated<string>;
  /** The profile's health check when the build was requested (migration 0016). */
  health_check: string | null;
  /** 1: the profile asked to skip the boot check when the build was requested (migration 0021). */
  skip_boot_check: Generated<number>;
  config_hash: string | null;
  /** 1: a rollout's build, published without pointing the machine at it (migration 0014). */
  hold: Generated<number>;
  /** When retention deleted the published image. */
  image_swept_at: string | null;
  rollout_id: number | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  updated_at: string;
}

/** Rollouts (migration 0014); the lease lets one server drive each. */
export interface RolloutsTable {
  id: Generated<number>;
  selector: string;
  build_mode: string;
  canary: number;
  batch_size: number;
  max_unavailable: number;
  max_failures: number;
  health_timeout_seconds: number;
  reboot: string;
  state: string;
  wave: number;
  waves: number;
  /** Grows with every write: writers compare and set it. */
  version: Generated<number>;
  resume_state: string | null;
  message: string | null;
  created_by: string;
  lease_owner: string | null;
  lease_expires_at: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

/** One machine of a rollout; `lock_machine_id` (unique) is the machine id while the rollout is active. */
export interface RolloutMachinesTable {
  rollout_id: number;
  machine_id: number;
  service_tag: string;
  wave: number;
  from_build_id: number | null;
  to_build_id: number | null;
  state: string;
  message: string | null;
  started_at: string | null;
  deadline_at: string | null;
  finished_at: string | null;
  updated_at: string;
  lock_machine_id: number | null;
  /** JSON of the health check result its report of the new build carried (migration 0016). */
  health: string | null;
}

export interface EventsTable {
  id: Generated<number>;
  kind: string;
  machine_id: number | null;
  build_id: number | null;
  actor_kind: string;
  actor_name: string;
  message: string;
  data: string | null;
  created_at: string;
}

export interface WebhooksTable {
  id: Generated<number>;
  url: string;
  /** JSON list of event patterns. */
  events: string;
  secret: string;
  enabled: number;
  failing_since: string | null;
  disabled_reason: string | null;
  created_at: string;
  updated_at: string;
}

/** Named BMC credentials (migration 0009); the password sealed by the secret box. */
export interface BmcCredentialSetsTable {
  id: Generated<number>;
  name: string;
  username: string;
  password_sealed: string;
  created_at: string;
  updated_at: string;
}

export interface WebhookDeliveriesTable {
  id: Generated<number>;
  webhook_id: number;
  delivery_id: string;
  event_id: number;
  event_type: string;
  payload: string;
  status: string;
  attempts: number;
  next_attempt_at: string | null;
  lease_owner: string | null;
  lease_until: string | null;
  last_status_code: number | null;
  last_error: string | null;
  response_excerpt: string | null;
  created_at: string;
  delivered_at: string | null;
}

/** One machine's BMC, last power state and reboot-on-publish (migration 0009). */
export interface MachinePowerTable {
  machine_id: number;
  /** null: no BMC (the row may still hold a state seen before it was removed). */
  bmc_type: string | null;
  bmc_address: string | null;
  bmc_username: string | null;
  bmc_password_sealed: string | null;
  credential_set_id: number | null;
  verify_tls: number | boolean;
  tls_fingerprint: string | null;
  tls_ca_bundle: string | null;
  redfish_auth: string;
  system_id: string | null;
  power_state: string;
  checked_at: string | null;
  reboot_on_publish: number | boolean;
  reboot_build_id: number | null;
  updated_at: string;
}

/** Profiles (migration 0013). */
export interface ProfilesTable {
  id: Generated<number>;
  name: string;
  description: string | null;
  nixos_config: string;
  hostname_pattern: string | null;
  /** JSON list of strings. */
  kernel_params: string;
  auto_build: number | boolean;
  /** A command line the image runs once up (migration 0016). */
  health_check: string | null;
  /** 1: its machines' builds skip the boot check (migration 0021). */
  skip_boot_check: Generated<number>;
  created_at: string;
  updated_at: string;
}

/** Rules applied at first enrollment (migration 0013). */
export interface RulesTable {
  id: Generated<number>;
  name: string;
  priority: number;
  /** JSON RuleMatch. */
  match: string;
  /** JSON RuleSet. */
  set: string;
  build: number | boolean;
  enabled: number | boolean;
  created_at: string;
  updated_at: string;
}

/** Fleet-wide facts by name (0017). */
export interface SettingsTable {
  name: string;
  value: string;
  updated_at: string;
}

/** Running builders, each keeping its row up to date (0022). */
export interface BuilderPresenceTable {
  name: string;
  started_at: string;
  last_seen_at: string;
  concurrency: number;
  running: number;
  boot_check: string;
  secure_boot: string | null;
}

export interface Schema extends AuthSchema {
  settings: SettingsTable;
  builder_presence: BuilderPresenceTable;
  profiles: ProfilesTable;
  rules: RulesTable;
  machines: MachinesTable;
  builds: BuildsTable;
  events: EventsTable;
  machine_tombstones: MachineTombstonesTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  bmc_credential_sets: BmcCredentialSetsTable;
  machine_power: MachinePowerTable;
  rollouts: RolloutsTable;
  rollout_machines: RolloutMachinesTable;
}
