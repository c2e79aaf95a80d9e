import { switchPorts } from '../../core/cabling.ts';
import type { Machine } from '../../core/types.ts';

/** The facts of one machine that Ansible sees as host variables. */
export interface HostVars {
  service_tag: string;
  /** e.g. `52:54:00:12:34:56` */
  mac: string;
  status: string;
  hostname: string | null;
  manufacturer: string | null;
  model: string | null;
  /** The CPU as the registration agent reported it (model, architecture, sockets, cores, threads). */
  cpu: Record<string, unknown> | null;
  /** Total memory in bytes. */
  memory: number | null;
  metal_id: number;
  last_build_id: number | null;
  /** Where each NIC is cabled, as its switch announced it over LLDP; empty when none reported it. */
  switch_ports: Array<{ nic: string | null; switch: string | null; port: string | null }>;
}

/** Ansible's dynamic inventory document (`--list`): groups with their hosts, and `_meta.hostvars`. */
export interface AnsibleInventory {
  _meta: { hostvars: Record<string, HostVars> };
  all: { children: string[] };
  [group: string]: { hosts?: string[]; children?: string[] } | AnsibleInventory['_meta'];
}

/** A group name Ansible accepts: lower case, `[a-z0-9_]`, runs of anything else as one `_`. */
export function groupName(prefix: string, value: string | null | undefined): string {
  const cleaned = (value ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return `${prefix}_${cleaned || 'unknown'}`;
}

function text(value: unknown): string | null {
  return typeof value === 'string' && value.trim() !== '' ? value : null;
}

function hostVars(machine: Machine): HostVars {
  const hw = machine.hardware ?? {};
  const cpu = hw.cpu && typeof hw.cpu === 'object' && !Array.isArray(hw.cpu) ? (hw.cpu as Record<string, unknown>) : null;
  const memory = hw.memory && typeof hw.memory === 'object' ? (hw.memory as { total_bytes?: unknown }).total_bytes : undefined;
  return {
    service_tag: machine.service_tag,
    mac: machine.mac_address,
    status: machine.status,
    hostname: machine.hostname,
    manufacturer: text(hw.manufacturer),
    model: text(hw.model),
    cpu,
    memory: typeof memory === 'number' ? memory : null,
    metal_id: machine.id,
    last_build_id: machine.last_build_id,
    switch_ports: switchPorts(hw).map((p) => ({ nic: p.nic ?? null, switch: p.switch ?? null, port: p.port ?? null })),
  };
}

/**
 * Builds the inventory: each machine is a host named by its hostname (its service tag when it has none,
 * or when another machine already uses that hostname), in groups `status_<s>`, `vendor_<v>`, `model_<m>`,
 * and `switch_<name>` for each switch its NICs are cabled to (LLDP): the hosts a switch's maintenance touches.
 */
export function buildAnsibleInventory(machines: readonly Machine[]): AnsibleInventory {
  const hostvars: Record<string, HostVars> = {};
  const groups = new Map<string, string[]>();
  const sorted = [...machines].sort((a, b) => a.id - b.id);
  for (const machine of sorted) {
    let host = machine.hostname || machine.service_tag;
    if (Object.hasOwn(hostvars, host)) host = machine.service_tag;
    if (Object.hasOwn(hostvars, host)) host = `${machine.service_tag}-${machine.id}`;
    const vars = hostVars(machine);
    hostvars[host] = vars;
    const switches = vars.switch_ports.filter((p) => p.switch !== null).map((p) => groupName('switch', p.switch));
    for (const group of new Set([groupName('status', vars.status), groupName('vendor', vars.manufacturer), groupName('model', vars.model), ...switches])) {
      const hosts = groups.get(group) ?? [];
      hosts.push(host);
      groups.set(group, hosts);
    }
  }
  const names = [...groups.keys()].sort();
  const inventory: AnsibleInventory = { _meta: { hostvars }, all: { children: ['ungrouped', ...names] } };
  inventory.ungrouped = { hosts: [] };
  for (const name of names) inventory[name] = { hosts: groups.get(name)! };
  return inventory;
}
