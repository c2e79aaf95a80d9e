import type { Selectable } from 'kysely';
import type { BuildStatus, MachineStatus } from '../core/lifecycle.ts';
import type { BootHealth, Build, BuildNixpkgs, Event, Hardware, IdentityConflict, Machine } from '../core/types.ts';
import { singleFileConfig } from '../core/config-files.ts';
import type { Labels } from '../core/labels.ts';
import { isOutOfDate } from '../core/config-hash.ts';
import type { BuildsTable, EventsTable, MachinesTable } from './schema.ts';

/** Row -> API object conversions, shared by every store. */
export function toMachine(row: Selectable<MachinesTable>): Machine {
  return {
    id: Number(row.id),
    service_tag: row.service_tag,
    mac_address: row.mac_address,
    status: row.status as MachineStatus,
    hostname: row.hostname,
    description: row.description,
    hardware: parseJson(row.hardware) as Hardware,
    nixos_config: row.nixos_config,
    nixos_files: configFiles(row.nixos_files, row.nixos_config),
    labels: parseJson(row.labels) as Labels,
    profile: row.profile,
    out_of_date: isOutOfDate(row.desired_hash, row.built_hash),
    last_build_id: row.last_build_id === null ? null : Number(row.last_build_id),
    booted_build_id: row.booted_build_id === null ? null : Number(row.booted_build_id),
    booted_at: row.booted_at,
    ...(row.booted_health ? { booted_health: parseJson(row.booted_health) as BootHealth } : {}),
    enrolled_at: row.enrolled_at,
    updated_at: row.updated_at,
    last_seen_at: row.last_seen_at,
    identity_conflict: row.identity_conflict === null ? null : (parseJson(row.identity_conflict) as IdentityConflict),
  };
}

export function toBuild(row: Selectable<BuildsTable>): Build {
  return {
    id: Number(row.id),
    machine_id: Number(row.machine_id),
    status: row.status as BuildStatus,
    config: row.config,
    config_files: configFiles(row.config_files, row.config) ?? {},
    hostname: row.hostname,
    profile: row.profile_name,
    config_hash: row.config_hash,
    ...(row.health_check ? { health_check: row.health_check } : {}),
    log_output: row.log_output,
    error: row.error,
    artifact_url: row.artifact_url,
    attempts: Number(row.attempts),
    hold: Boolean(Number(row.hold)),
    image_swept_at: row.image_swept_at,
    created_at: row.created_at,
    started_at: row.started_at,
    completed_at: row.completed_at,
    nixpkgs: buildNixpkgs(row),
    boot_check_seconds: row.boot_check_seconds === null ? null : Number(row.boot_check_seconds),
  };
}

/** A stored configuration map, or the one-file map of the entry text when none is stored. */
function configFiles(json: string | null, entry: string | null): Record<string, string> | null {
  if (json !== null) {
    const parsed = parseJson(json);
    if (parsed !== null && typeof parsed === 'object' && Object.keys(parsed).length > 0) return parsed as Record<string, string>;
  }
  return entry === null ? null : singleFileConfig(entry);
}

/** The nixpkgs columns as the API shows them: null when the build recorded none. */
export function buildNixpkgs(row: Pick<Selectable<BuildsTable>, 'nixpkgs_version' | 'nixpkgs_revision' | 'nixpkgs_source' | 'nixpkgs_sha256'>): BuildNixpkgs | null {
  const n = { version: row.nixpkgs_version, revision: row.nixpkgs_revision, source: row.nixpkgs_source, sha256: row.nixpkgs_sha256 };
  return Object.values(n).some((v) => v !== null) ? n : null;
}

export function toEvent(row: Selectable<EventsTable>): Event {
  return {
    id: Number(row.id),
    kind: row.kind,
    machine_id: row.machine_id === null ? null : Number(row.machine_id),
    build_id: row.build_id === null ? null : Number(row.build_id),
    actor: row.actor_kind === 'system' ? 'system' : `${row.actor_kind}:${row.actor_name}`,
    message: row.message,
    data: row.data === null ? null : (parseJson(row.data) as Record<string, unknown>),
    created_at: row.created_at,
  };
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return {};
  }
}
