import { switchPortOf } from '../core/cabling.ts';
import type { Hardware } from '../core/types.ts';
import { isPlaceholderDmiText } from '../core/validation.ts';

/** Hardware facts as the dashboard shows them; every field tolerates a missing or odd value. */
export interface HardwareView {
  manufacturer: string | null;
  model: string | null;
  serial: string | null;
  uuid: string | null;
  bios: { vendor: string | null; version: string | null; date: string | null } | null;
  cpu: { model: string | null; architecture: string | null; sockets: number | null; cores: number | null; threads: number | null } | null;
  memoryBytes: number | null;
  dimms: Array<{ locator: string | null; sizeBytes: number | null; type: string | null; speedMts: number | null }>;
  disks: Array<{
    name: string | null;
    sizeBytes: number | null;
    model: string | null;
    serial: string | null;
    rotational: boolean | null;
    /** The agent's `kind`: `nvme`, `disk`, or `raid` (a RAID controller's logical volume), else null. */
    kind: string | null;
    /** The RAID controller of a `raid` volume, as the agent names it. */
    controller: string | null;
  }>;
  nics: Array<{ name: string | null; mac: string | null; driver: string | null; speedMbps: number | null; link: boolean | null; lldp: LldpView | null }>;
  gpus: Array<{ vendor: string | null; model: string | null; pciAddress: string | null }>;
  /** Fields the agent sent that the dashboard has no place for, shown raw. */
  extra: Record<string, unknown>;
}

/** A NIC's LLDP neighbour: the switch (its name, else its chassis id), the port (its id, else its description), the port's VLAN. */
export interface LldpView {
  switchName: string | null;
  port: string | null;
  portDescription: string | null;
  vlanId: number | null;
}

const KNOWN = new Set(['manufacturer', 'model', 'serial', 'uuid', 'bios', 'cpu', 'memory', 'disks', 'nics', 'gpus']);

/** Reads the enrollment payload's hardware into typed, defaulted fields. */
export function viewHardware(hardware: Hardware | null | undefined): HardwareView {
  const h = record(hardware) ?? {};
  const bios = record(h.bios);
  const cpu = record(h.cpu);
  const memory = record(h.memory);
  return {
    manufacturer: text(h.manufacturer),
    model: text(h.model),
    serial: text(h.serial),
    uuid: text(h.uuid),
    bios: bios ? { vendor: text(bios.vendor), version: text(bios.version), date: text(bios.date) } : null,
    cpu: cpu
      ? { model: text(cpu.model), architecture: text(cpu.architecture), sockets: count(cpu.sockets), cores: count(cpu.cores), threads: count(cpu.threads) }
      : null,
    memoryBytes: count(memory?.total_bytes),
    dimms: list(memory?.dimms).map((d) => ({ locator: text(d.locator), sizeBytes: count(d.size_bytes), type: text(d.type), speedMts: count(d.speed_mts) })),
    disks: list(h.disks).map((d) => ({
      name: text(d.name),
      sizeBytes: count(d.size_bytes),
      model: text(d.model),
      serial: text(d.serial),
      rotational: flag(d.rotational),
      kind: text(d.kind),
      controller: text(d.controller),
    })),
    nics: list(h.nics).map((n) => ({ name: text(n.name), mac: text(n.mac), driver: text(n.driver), speedMbps: count(n.speed_mbps), link: flag(n.link), lldp: viewLldp(n) })),
    gpus: list(h.gpus).map((g) => ({ vendor: text(g.vendor), model: text(g.model), pciAddress: text(g.pci_address) })),
    extra: Object.fromEntries(Object.entries(h).filter(([k]) => !KNOWN.has(k))),
  };
}

function viewLldp(nic: Record<string, unknown>): LldpView | null {
  const p = switchPortOf(nic);
  if (!p) return null;
  const l = record(nic.lldp)!;
  return { switchName: p.switch ?? null, port: p.port ?? null, portDescription: text(l.port_id) === null ? null : text(l.port_description), vlanId: count(l.vlan_id) };
}

/** "leaf-r12-a Ethernet12 (server r12-u07) · VLAN 100", or — when the NIC saw no LLDP neighbour. */
export function switchPortText(lldp: LldpView | null): string {
  if (!lldp) return '—';
  const port = [lldp.switchName ?? '?', lldp.port ?? '?'].join(' ') + (lldp.portDescription ? ` (${lldp.portDescription})` : '');
  return lldp.vlanId === null ? port : `${port} · VLAN ${lldp.vlanId}`;
}

/**
 * What a disk is, in a word: a RAID controller's logical volume (whose rotational flag is the
 * controller's guess, not a disk's), an NVMe SSD, else HDD or SSD by the rotational flag.
 */
export function diskKindText(disk: Pick<HardwareView['disks'][number], 'kind' | 'controller' | 'rotational'>): string {
  if (disk.kind === 'raid') {
    if (!disk.controller) return 'RAID volume';
    // lspci names the card last, in parentheses: `Broadcom / LSI MegaRAID SAS3508 (PERC H740P Mini)`.
    const card = /\(([^()]+)\)\s*$/.exec(disk.controller)?.[1] ?? disk.controller;
    return `RAID volume (${card.length > 40 ? `${card.slice(0, 40)}…` : card})`;
  }
  if (disk.kind === 'nvme') return 'NVMe SSD';
  return disk.rotational === null ? '—' : disk.rotational ? 'HDD' : 'SSD';
}

/** A DMI vendor or model name, or null for none or a placeholder (`To Be Filled By O.E.M.`): lists and charts group those as unknown. */
export function knownDmiText(value: unknown): string | null {
  return typeof value === 'string' && value.trim() !== '' && !isPlaceholderDmiText(value) ? value : null;
}

/** Rows a hardware table shows; the rest are counted, not rendered. */
export const MAX_HARDWARE_ROWS = 64;
/** Characters a hardware cell shows before it is cut with an ellipsis. */
export const MAX_CELL_CHARS = 128;
/** Characters of the raw "other reported fields" shown. */
export const MAX_RAW_CHARS = 8 * 1024;

/** A cell's text, cut to MAX_CELL_CHARS. */
export function clip(text: string, max = MAX_CELL_CHARS): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * Pretty JSON of at most `maxChars` characters and `maxDepth` levels, whatever the value: a page never
 * grows with the size or depth of what a machine reported.
 */
export function boundedJson(value: unknown, maxChars = MAX_RAW_CHARS, maxDepth = 16): string {
  let out = '';
  let full = false;
  const write = (s: string) => {
    if (full) return;
    if (out.length + s.length > maxChars) {
      out += s.slice(0, Math.max(0, maxChars - out.length));
      full = true;
    } else out += s;
  };
  const walk = (v: unknown, depth: number, indent: string) => {
    if (full) return;
    if (typeof v !== 'object' || v === null) {
      write(JSON.stringify(v) ?? 'null');
      return;
    }
    if (depth >= maxDepth) {
      write(Array.isArray(v) ? '[…]' : '{…}');
      return;
    }
    const inner = `${indent}  `;
    const isArray = Array.isArray(v);
    const keys = isArray ? undefined : Object.keys(v);
    const length = isArray ? v.length : keys!.length;
    if (length === 0) {
      write(isArray ? '[]' : '{}');
      return;
    }
    write(isArray ? '[\n' : '{\n');
    // Stops at the budget: a 100,000-item array costs no more than a short one.
    for (let i = 0; i < length && !full; i++) {
      const key = keys?.[i];
      write(inner + (key === undefined ? '' : `${JSON.stringify(key)}: `));
      walk(isArray ? (v as unknown[])[i] : (v as Record<string, unknown>)[key!], depth + 1, inner);
      write(i < length - 1 ? ',\n' : '\n');
    }
    write(indent + (isArray ? ']' : '}'));
  };
  walk(value, 0, '');
  return full ? `${out}\n… (cut at ${maxChars} characters)` : out;
}

/** Total disk capacity in bytes. */
export function totalDiskBytes(view: HardwareView): number {
  return view.disks.reduce((sum, d) => sum + (d.sizeBytes ?? 0), 0);
}

/** One line for tables, e.g. "2 × Intel Xeon Gold 6230 · 40 cores / 80 threads". */
export function cpuSummary(view: HardwareView): string {
  const cpu = view.cpu;
  if (!cpu) return '—';
  const parts: string[] = [];
  const model = cpu.model ? shortCpuModel(cpu.model) : null;
  if (model) parts.push(cpu.sockets && cpu.sockets > 1 ? `${cpu.sockets} × ${model}` : model);
  if (cpu.cores !== null) parts.push(cpu.threads !== null && cpu.threads !== cpu.cores ? `${cpu.cores} cores / ${cpu.threads} threads` : `${cpu.cores} cores`);
  return parts.length ? parts.join(' · ') : '—';
}

/** A CPU model without trademark marks and filler, e.g. "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz" -> "Intel Xeon Gold 6230 @ 2.10GHz". */
export function shortCpuModel(model: string): string {
  return model
    .replace(/\((?:R|TM)\)/gi, '')
    .replace(/\s+CPU(?=\s+@)/, '')
    .replace(/\s+Processor\s*$/, '')
    .replace(/\s+/g, ' ')
    .trim();
}

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function list(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v) ? v.map(record).filter((x): x is Record<string, unknown> => x !== undefined) : [];
}

function text(v: unknown): string | null {
  if (typeof v === 'string') return v.trim() === '' ? null : v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return null;
}

function count(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null;
}

function flag(v: unknown): boolean | null {
  return typeof v === 'boolean' ? v : null;
}
