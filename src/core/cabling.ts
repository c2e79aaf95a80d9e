import type { Hardware } from './types.ts';

/** Where one NIC is cabled, as its LLDP neighbour announced it (`hardware.nics[].lldp`). */
export interface SwitchPort {
  /** The NIC's name, e.g. `eno1`. */
  nic: string | undefined;
  /** The switch's system name, else its chassis id. */
  switch: string | undefined;
  /** The port's id, else its description. */
  port: string | undefined;
}

const record = (v: unknown): Record<string, unknown> | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
const text = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v : undefined);

/** Where one reported NIC is cabled, or undefined when its LLDP neighbour (if any) named no switch or port. */
export function switchPortOf(nic: unknown): SwitchPort | undefined {
  const lldp = record(record(nic)?.lldp);
  if (!lldp) return undefined;
  const port = { nic: text(record(nic)?.name), switch: text(lldp.system_name) ?? text(lldp.chassis_id), port: text(lldp.port_id) ?? text(lldp.port_description) };
  return port.switch !== undefined || port.port !== undefined ? port : undefined;
}

/** The switch ports a machine's NICs heard over LLDP, in NIC order; NICs that heard nothing are left out. */
export function switchPorts(hardware: Hardware): SwitchPort[] {
  const nics = Array.isArray(hardware.nics) ? (hardware.nics as unknown[]) : [];
  return nics.map(switchPortOf).filter((p): p is SwitchPort => p !== undefined);
}

/** The words a machine search matches for its cabling: each switch and port, e.g. `leaf-r12-a ethernet12`. */
export function cablingSearchText(hardware: Hardware): string {
  return switchPorts(hardware)
    .flatMap((p) => [p.switch ?? '', p.port ?? ''])
    .filter(Boolean)
    .join(' ')
    .toLowerCase();
}

/** `leaf-r12-a Ethernet12`, `? Ethernet12` when the switch gave no name or id. */
export function describeSwitchPort(p: SwitchPort | undefined): string {
  return p ? `${p.switch ?? '?'} ${p.port ?? '?'}` : 'no LLDP neighbour';
}

/**
 * The NICs whose switch port differs between two hardware documents of one machine, by NIC name, as
 * `eno1: leaf-r12-a Ethernet12 -> leaf-r13-b swp7`: a machine moved or recabled. A NIC that heard no
 * neighbour either time is not a change; one that is new or gone is only when it heard one.
 */
export function cablingChanges(before: Hardware, after: Hardware): string[] {
  const byNic = (h: Hardware) => new Map(switchPorts(h).filter((p) => p.nic !== undefined).map((p) => [p.nic!, p] as const));
  const was = byNic(before);
  const now = byNic(after);
  const changes: string[] = [];
  for (const nic of [...new Set([...was.keys(), ...now.keys()])].sort()) {
    const a = was.get(nic);
    const b = now.get(nic);
    if (a?.switch === b?.switch && a?.port === b?.port) continue;
    changes.push(`${nic}: ${describeSwitchPort(a)} -> ${describeSwitchPort(b)}`);
  }
  return changes;
}
