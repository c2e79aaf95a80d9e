import type { Hardware } from './types.ts';

/** Where one NIC is cabled, as its LLDP neighbour announced it (`hardware.nics[].lldp`). */
export interface SwitchPort {
  /** The switch's system name, else its chassis id. */
  switch: string | undefined;
  /** The port's id, else its description. */
  port: string | undefined;
}

const record = (v: unknown): Record<string, unknown> | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
const text = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v : undefined);

/** The switch ports a machine's NICs heard over LLDP, in NIC order; NICs that heard nothing are left out. */
export function switchPorts(hardware: Hardware): SwitchPort[] {
  const nics = Array.isArray(hardware.nics) ? (hardware.nics as unknown[]) : [];
  const out: SwitchPort[] = [];
  for (const nic of nics) {
    const lldp = record(record(nic)?.lldp);
    if (!lldp) continue;
    const port = { switch: text(lldp.system_name) ?? text(lldp.chassis_id), port: text(lldp.port_id) ?? text(lldp.port_description) };
    if (port.switch !== undefined || port.port !== undefined) out.push(port);
  }
  return out;
}

/** The words a machine search matches for its cabling: each switch and port, e.g. `leaf-r12-a ethernet12`. */
export function cablingSearchText(hardware: Hardware): string {
  return switchPorts(hardware)
    .flatMap((p) => [p.switch ?? '', p.port ?? ''])
    .filter(Boolean)
    .join(' ')
    .toLowerCase();
}
