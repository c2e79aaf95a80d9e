import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { BUILD_STATUSES, MACHINE_STATUSES } from '../core/lifecycle.ts';
import { MAX_ID } from '../core/validation.ts';

/** Schemas declared once: used for validation, serialization and the OpenAPI document. */

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Time = Type.String({ format: 'date-time', description: 'ISO 8601 UTC' });

/** The result of a profile's health check, sent by an image with its booted report. */
export const BootHealthSchema = Type.Object(
  {
    ok: Type.Boolean(),
    exit_code: Nullable(Type.Integer({ description: 'null: stopped by its timeout or not run' })),
    output: Type.String({ description: 'the last 2 KiB of what the check printed' }),
  },
  { description: 'the health check result sent with the last booted report; absent when it sent none' },
);

export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ examples: ['not_found'] }),
      message: Type.String({ examples: ['machine ABC123 not found'] }),
      details: Type.Optional(Type.Object({}, { additionalProperties: true })),
    }),
  },
  { $id: 'Error' },
);

/**
 * The largest offset and id any route takes: far beyond any real fleet, and inside a 32-bit integer so
 * every database binds it (without a bound a 2^64 offset passed validation and failed in the driver).
 */
export const MAX_OFFSET = 2_147_483_647;
export { MAX_ID };
/** `limit` of every list route: 1 to 500, default 50. */
export const Limit = () => Type.Integer({ minimum: 1, maximum: 500, default: 50 });
/** `offset` of every list route: 0 to MAX_OFFSET, default 0. */
export const Offset = () => Type.Integer({ minimum: 0, maximum: MAX_OFFSET, default: 0 });

const Str = (maxLength = 256) => Type.String({ maxLength });
const Int = () => Type.Integer({ minimum: 0 });

/** The LLDP neighbour a NIC saw (the agent reads lldpd's `lldpctl -f keyvalue`): its switch and port. */
const Lldp = Type.Object(
  {
    chassis_id: Type.Optional(Str()),
    chassis_id_type: Type.Optional(Str(32)),
    system_name: Type.Optional(Str()),
    system_description: Type.Optional(Str()),
    port_id: Type.Optional(Str()),
    port_id_type: Type.Optional(Str(32)),
    port_description: Type.Optional(Str()),
    vlan_id: Type.Optional(Type.Integer({ minimum: 1, maximum: 4094 })),
    management_address: Type.Optional(Str(64)),
  },
  {
    additionalProperties: true,
    description: "The switch port a NIC is cabled to, as the switch announces it over LLDP (IEEE 802.1AB).",
    examples: [{ chassis_id: '44:4c:a8:12:34:56', chassis_id_type: 'mac', system_name: 'leaf-r12-a', port_id: 'Ethernet12', port_id_type: 'ifname', vlan_id: 100 }],
  },
);

export const Hardware = Type.Object(
  {
    manufacturer: Type.Optional(Str()),
    model: Type.Optional(Str()),
    serial: Type.Optional(Str()),
    uuid: Type.Optional(Str()),
    bios: Type.Optional(
      Type.Object({ vendor: Type.Optional(Str()), version: Type.Optional(Str()), date: Type.Optional(Str()) }, { additionalProperties: true }),
    ),
    cpu: Type.Optional(
      Type.Object(
        {
          model: Type.Optional(Str()),
          architecture: Type.Optional(Str(64)),
          sockets: Type.Optional(Int()),
          cores: Type.Optional(Int()),
          threads: Type.Optional(Int()),
        },
        { additionalProperties: true },
      ),
    ),
    memory: Type.Optional(
      Type.Object(
        {
          total_bytes: Type.Optional(Int()),
          dimms: Type.Optional(
            Type.Array(
              Type.Object(
                {
                  locator: Type.Optional(Str()),
                  size_bytes: Type.Optional(Int()),
                  type: Type.Optional(Str(64)),
                  speed_mts: Type.Optional(Nullable(Int())),
                },
                { additionalProperties: true },
              ),
              { maxItems: 1024 },
            ),
          ),
        },
        { additionalProperties: true },
      ),
    ),
    disks: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.Optional(Str()),
            size_bytes: Type.Optional(Int()),
            model: Type.Optional(Nullable(Str())),
            serial: Type.Optional(Nullable(Str())),
            rotational: Type.Optional(Nullable(Type.Boolean())),
          },
          { additionalProperties: true },
        ),
        { maxItems: 1024 },
      ),
    ),
    nics: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.Optional(Str()),
            mac: Type.Optional(Nullable(Str(64))),
            driver: Type.Optional(Nullable(Str())),
            speed_mbps: Type.Optional(Nullable(Type.Integer())),
            link: Type.Optional(Nullable(Type.Boolean())),
            lldp: Type.Optional(Nullable(Lldp)),
          },
          { additionalProperties: true },
        ),
        { maxItems: 1024 },
      ),
    ),
    gpus: Type.Optional(
      Type.Array(
        Type.Object(
          { vendor: Type.Optional(Nullable(Str())), model: Type.Optional(Nullable(Str())), pci_address: Type.Optional(Nullable(Str(64))) },
          { additionalProperties: true },
        ),
        { maxItems: 256 },
      ),
    ),
  },
  { additionalProperties: true, $id: 'Hardware', description: 'What the registration agent found; unknown extra fields are kept.' },
);

export const EnrollBody = Type.Object(
  {
    service_tag: Type.String({ description: 'DMI system serial, or the SMBIOS UUID / MAC when the serial is a placeholder', examples: ['ABC123'] }),
    mac_address: Type.String({ examples: ['52:54:00:12:34:56'] }),
    hardware: Type.Ref(Hardware),
  },
  { additionalProperties: false },
);
export type EnrollBody = Static<typeof EnrollBody>;

export const EnrollResponse = Type.Object({
  id: Type.Integer(),
  service_tag: Type.String(),
  status: Type.Union(MACHINE_STATUSES.map((s) => Type.Literal(s))),
});

/** A configuration map: file name → text (checked in the core, see core/config-files.ts). */
function ConfigFilesSchema(description: string) {
  return Type.Record(Type.String(), Type.String(), { description, maxProperties: 64, examples: [{ 'configuration.nix': '{ ... }: { imports = [ ./hardware.nix ]; }', 'hardware.nix': '{ ... }: { }' }] });
}

export const Machine = Type.Object(
  {
    id: Type.Integer(),
    service_tag: Type.String(),
    mac_address: Type.String(),
    status: Type.Union(MACHINE_STATUSES.map((s) => Type.Literal(s))),
    hostname: Nullable(Type.String()),
    description: Nullable(Type.String()),
    hardware: Type.Ref(Hardware),
    nixos_config: Nullable(Type.String({ description: 'the entry file, nixos_files["configuration.nix"]' })),
    nixos_files: Nullable(ConfigFilesSchema('the whole NixOS configuration: file name → text, configuration.nix the entry')),
    labels: Type.Record(Type.String(), Type.String(), { description: 'label key → value, e.g. {"role": "web", "rack": "r12"}' }),
    profile: Nullable(Type.String({ description: 'the profile whose module its build imports before its own, e.g. web' })),
    out_of_date: Type.Boolean({ description: 'it can be built and has no image, or one built from another configuration (profile, own module, hostname, nixpkgs)' }),
    last_build_id: Nullable(Type.Integer()),
    booted_build_id: Nullable(Type.Integer({ description: 'the build whose image last reported that it booted' })),
    booted_at: Nullable(Time),
    booted_health: Type.Optional(BootHealthSchema),
    enrolled_at: Time,
    updated_at: Time,
    last_seen_at: Nullable(Time),
    identity_conflict: Nullable(
      Type.Object(
        {
          mac_address: Type.String({ description: 'the MAC the enrollment claimed' }),
          system_uuid: Nullable(Type.String({ description: 'the SMBIOS UUID it claimed' })),
          held_by: Type.Array(Type.String(), { description: 'service tags of other machines holding the claimed MAC or UUID' }),
          claimed_at: Time,
          address: Nullable(Type.String({ description: 'where the enrollment came from' })),
        },
        { description: 'an enrollment’s claim of a MAC or UUID that is not this machine’s, until an operator accepts or rejects it' },
      ),
    ),
  },
  { $id: 'Machine' },
);

export const MachineList = Type.Object({ items: Type.Array(Type.Ref(Machine)), total: Type.Integer() });

export const MachineListQuery = Type.Object({
  status: Type.Optional(Type.Union(MACHINE_STATUSES.map((s) => Type.Literal(s)))),
  search: Type.Optional(Type.String({ maxLength: 128, description: 'a substring of the service tag, hostname, MAC, vendor, model, or a switch or switch port a NIC is cabled to (LLDP)' })),
  selector: Type.Optional(
    Type.String({ maxLength: 1024, description: 'a label selector, as in Kubernetes: `role=web,rack in (r12,r13),!gpu`', examples: ['role=web,env!=prod'] }),
  ),
  profile: Type.Optional(Type.String({ maxLength: 63, description: 'only machines with this profile', examples: ['web'] })),
  out_of_date: Type.Optional(Type.Boolean({ description: 'only machines that are (true) or are not (false) out of date' })),
  limit: Type.Optional(Limit()),
  offset: Type.Optional(Offset()),
  sort: Type.Optional(Type.Union((['id', 'service_tag', 'hostname', 'status', 'last_seen_at', 'updated_at'] as const).map((s) => Type.Literal(s)))),
  order: Type.Optional(Type.Union([Type.Literal('asc'), Type.Literal('desc')])),
});
export type MachineListQuery = Static<typeof MachineListQuery>;

export const MachineUpdateBody = Type.Object(
  {
    hostname: Type.Optional(Nullable(Type.String({ description: 'an RFC 1123 label', examples: ['web-01'] }))),
    description: Type.Optional(Nullable(Type.String())),
    nixos_config: Type.Optional(Nullable(Type.String({ description: 'a NixOS module, at most 256 KiB: the configuration becomes this one file (configuration.nix)' }))),
    nixos_files: Type.Optional(
      Nullable(
        ConfigFilesSchema(
          'the whole configuration, replacing every file: file name → text, configuration.nix required; names one folder deep at most, ending in .nix .json .toml .yaml .yml .txt .conf .sh .pub .pem .crt; at most 64 files and 256 KiB in all',
        ),
      ),
    ),
    labels: Type.Optional(
      Type.Record(Type.String(), Type.String(), { description: 'the whole label map (replaces the current one); keys and values as Kubernetes labels', examples: [{ role: 'web' }] }),
    ),
    profile: Type.Optional(Nullable(Type.String({ maxLength: 63, description: 'a profile name, or null for none', examples: ['web'] }))),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type MachineUpdateBody = Static<typeof MachineUpdateBody>;

export const IdentityDecisionBody = Type.Object(
  { action: Type.Union([Type.Literal('accept'), Type.Literal('reject')], { description: 'accept: the claimed MAC and UUID become the machine’s; reject: the claim is dropped' }) },
  { additionalProperties: false },
);
export type IdentityDecisionBody = Static<typeof IdentityDecisionBody>;

export const Build = Type.Object(
  {
    id: Type.Integer(),
    machine_id: Type.Integer(),
    status: Type.Union(BUILD_STATUSES.map((s) => Type.Literal(s))),
    config: Type.String({ description: 'the entry file (configuration.nix) as it was when the build was requested' }),
    config_files: ConfigFilesSchema('every file of the configuration as it was when the build was requested'),
    hostname: Type.String(),
    profile: Nullable(Type.String({ description: 'the profile imported before the machine module, as it was when requested' })),
    config_hash: Nullable(Type.String({ description: 'sha256 of what the build is made from' })),
    health_check: Type.Optional(Nullable(Type.String({ description: 'the profile’s health check when the build was requested; absent when none' }))),
    log_output: Type.String(),
    error: Nullable(Type.String()),
    artifact_url: Nullable(Type.String()),
    attempts: Type.Integer(),
    hold: Type.Boolean({ description: 'a rollout’s build: published on success, booted only when its wave points the machine at it' }),
    image_swept_at: Nullable({ ...Time, description: 'when retention (METAL_KEEP_BUILDS) deleted its image; it can no longer be booted' }),
    created_at: Time,
    started_at: Nullable(Time),
    completed_at: Nullable(Time),
    nixpkgs: Nullable(
      Type.Object(
        {
          version: Nullable(Type.String({ examples: ['24.05.1234.abcdef0'] })),
          revision: Nullable(Type.String({ description: 'the nixpkgs git revision', examples: ['abcdef0123456789abcdef0123456789abcdef01'] })),
          source: Nullable(Type.String({ description: 'METAL_NIXPKGS: a path or a tarball URL', examples: ['/srv/nixpkgs'] })),
          sha256: Nullable(Type.String({ description: 'the pinned tarball’s hash' })),
        },
        { description: 'the nixpkgs a successful build was built from, as its entry recorded it; null when unknown' },
      ),
    ),
    boot_check_seconds: Nullable(
      Type.Integer({ minimum: 0, description: 'seconds its image took to report booted in the builder’s VM before any machine got it (METAL_BUILD_BOOT_CHECK); null when it was not checked' }),
    ),
  },
  { $id: 'Build' },
);

export const BuildList = Type.Object({ items: Type.Array(Type.Ref(Build)), total: Type.Integer() });

export const Event = Type.Object(
  {
    id: Type.Integer(),
    kind: Type.String({ examples: ['machine.enrolled'] }),
    machine_id: Nullable(Type.Integer()),
    build_id: Nullable(Type.Integer()),
    actor: Type.String({ examples: ['user:alice', 'machine:ABC123', 'system'] }),
    message: Type.String(),
    data: Nullable(Type.Object({}, { additionalProperties: true })),
    created_at: Time,
  },
  { $id: 'Event' },
);

export const EventList = Type.Object({ items: Type.Array(Type.Ref(Event)), total: Type.Integer() });

export const Paging = Type.Object({
  limit: Type.Optional(Limit()),
  offset: Type.Optional(Offset()),
});

export const IdParam = Type.Object({
  id: Type.String({ maxLength: 72, description: 'a service tag (`ABC123`, or `tag:12` for a numeric one), or `id:12`; a plain number is an id only when it is no machine’s tag' }),
});
export const BuildIdParam = Type.Object({ id: Type.Integer({ minimum: 1, maximum: MAX_ID }) });

/** Shared schemas registered on a server with addSchema, referenced by $id. */
export const SHARED_SCHEMAS = [ErrorResponse, Hardware, Machine, Build, Event];

/** Standard error responses for a route's schema. */
export function errorResponses(...codes: number[]): Record<number, TSchema> {
  return Object.fromEntries(codes.map((c) => [c, Type.Ref(ErrorResponse)]));
}
