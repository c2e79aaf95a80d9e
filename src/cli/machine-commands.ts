import { Argument, Option, type Command } from 'commander';
import { describeSwitchPort, switchPorts } from '../core/cabling.ts';
import { MACHINE_STATUSES } from '../core/lifecycle.ts';
import type { Event, Machine } from '../core/types.ts';
import { CliError, segment } from './client/api-client.ts';
import { clientFromEnvironment } from './client/client-settings.ts';
import { positiveInteger, printJson, printLines, withExamples } from './client/output.ts';
import { colourStatus, formatBytes, formatDiskBytes, formatTable, printable, shouldColour, statusCell } from './client/table.ts';
import { confirm, readTextArgument } from './client/terminal-input.ts';
import { readConfigDirectory, writeConfigDirectory } from './client/config-directory.ts';
import { statSync } from 'node:fs';
import { machineRef } from '../core/machine-service.ts';
import { applyLabelArgs, formatLabels, formatSelector, parseSelector } from '../core/labels.ts';

/** The largest NixOS configuration the API accepts. */
const MAX_CONFIG_BYTES = 256 * 1024;

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** A selector from the command line in its canonical form; a CliError naming the problem otherwise. */
function selectorArgument(text: string): string {
  try {
    return formatSelector(parseSelector(text));
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

interface MachineList {
  items: Machine[];
  total: number;
}

function machineRows(machines: Machine[], colour: boolean): string[] {
  return formatTable(
    ['SERVICE TAG', 'HOSTNAME', 'STATUS', 'MAC', 'MODEL', 'LAST SEEN'],
    machines.map((m) => [
      printable(m.service_tag),
      printable(m.hostname) || '-',
      statusCell(m.status, colour),
      printable(m.mac_address),
      printable([m.hardware?.manufacturer, m.hardware?.model].filter(Boolean).join(' ')) || '-',
      m.last_seen_at ? m.last_seen_at.replace(/\.\d+Z$/, 'Z') : '-',
    ]),
  );
}

/** `rack=r12,role=web` (printable), or '' without labels. */
function printableLabels(labels: Record<string, string> | undefined): string {
  return printable(formatLabels(labels));
}

function describeMachine(m: Machine, colour: boolean): string[] {
  const hw = m.hardware ?? {};
  const cpu = (hw.cpu ?? {}) as { model?: string; sockets?: number; cores?: number; threads?: number };
  const memory = (hw.memory ?? {}) as { total_bytes?: number };
  const disks = Array.isArray(hw.disks) ? (hw.disks as Array<{ name?: string; size_bytes?: number; model?: string | null }>) : [];
  const nics = Array.isArray(hw.nics) ? (hw.nics as Array<{ name?: string; mac?: string | null; speed_mbps?: number | null }>) : [];
  const fields: Array<[string, string]> = [
    ['service tag', printable(m.service_tag)],
    ['id', String(m.id)],
    ['status', colourStatus(m.status, colour)],
    ['hostname', printable(m.hostname) || '-'],
    ['description', printable(m.description) || '-'],
    ['labels', printableLabels(m.labels) || '-'],
    ['profile', printable(m.profile) || '-'],
    ['out of date', m.out_of_date ? `yes (metal build ${printable(m.service_tag)}, or metal bulk build --out-of-date for all)` : 'no'],
    ['mac', printable(m.mac_address)],
    ['hardware', printable([hw.manufacturer, hw.model].filter(Boolean).join(' ')) || '-'],
    ['cpu', printable([cpu.model, cpu.cores !== undefined ? `${cpu.cores} cores` : '', cpu.threads !== undefined ? `${cpu.threads} threads` : ''].filter(Boolean).join(', ')) || '-'],
    ['memory', formatBytes(memory.total_bytes) || '-'],
    ['disks', disks.map((d) => printable(`${d.name ?? '?'} ${formatDiskBytes(d.size_bytes)}${d.model ? ` ${d.model}` : ''}`.trim())).join('; ') || '-'],
    ['nics', nics.map((n) => printable(`${n.name ?? '?'} ${n.mac ?? ''}${n.speed_mbps ? ` ${n.speed_mbps} Mb/s` : ''}`.trim())).join('; ') || '-'],
    ['cabled to', switchPorts(hw).map((p) => printable(`${p.nic ?? '?'}: ${describeSwitchPort(p)}`)).join('; ') || '- (no LLDP neighbour reported)'],
    ['last build', m.last_build_id === null ? '-' : `${m.last_build_id}  (metal builds show ${m.last_build_id})`],
    ['booted build', m.booted_build_id === null || m.booted_build_id === undefined ? '-' : `${m.booted_build_id} at ${m.booted_at ?? '?'}`],
    ['enrolled', m.enrolled_at],
    ['updated', m.updated_at],
    ['last seen', m.last_seen_at ?? '-'],
  ];
  const conflict = m.identity_conflict;
  if (conflict) {
    const claimed = `MAC ${conflict.mac_address}${conflict.system_uuid ? ` UUID ${conflict.system_uuid}` : ''}`;
    const held = conflict.held_by.length > 0 ? `, held by ${conflict.held_by.join(', ')}` : '';
    fields.push(['identity conflict', printable(`${claimed}${held}, from ${conflict.address ?? '?'} at ${conflict.claimed_at} (settle it: metal machines identity ${machineRef(m.service_tag)} accept|reject)`)]);
  }
  const width = Math.max(...fields.map(([k]) => k.length));
  const lines = fields.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`);
  const files = Object.entries(m.nixos_files ?? (m.nixos_config !== null ? { 'configuration.nix': m.nixos_config } : {}));
  lines.push(files.length > 1 ? `nixos configuration (${files.length} files; metal machines config ${m.service_tag} --export DIR):` : 'nixos configuration:');
  for (const [name, text] of files) {
    if (files.length > 1) lines.push(`  ${printable(name)}:`);
    const indent = files.length > 1 ? '    ' : '  ';
    lines.push(...text.replace(/\n$/, '').split('\n').map((l) => `${indent}${printable(l)}`));
  }
  if (files.length === 0) lines.push('  (none: metal machines set ' + m.service_tag + ' --config FILE|DIR)');
  return lines;
}

/** `metal machines ls|show|set|rm`. */
export function registerMachineCommands(program: Command): void {
  const machines = withExamples(
    program.command('machines').description('list, inspect, configure and remove machines'),
    'metal machines ls --status enrolled',
    'metal machines set ABC123 --hostname web-01 --config web-01.nix',
  );

  withExamples(
    machines
      .command('ls')
      .description('list machines as a table')
      .addOption(new Option('--status <status>', 'only machines in this status').choices(MACHINE_STATUSES))
      .option('--search <text>', 'match service tag, hostname, MAC or model')
      .option('-l, --selector <selector>', 'only machines whose labels match, e.g. "role=web,rack in (r12,r13),!gpu"')
      .option('--profile <name>', 'only machines with this profile')
      .option('--out-of-date', 'only machines whose image is older than their configuration')
      .option('--limit <n>', 'at most this many (1-500)', positiveInteger('--limit'), 50)
      .option('--offset <n>', 'skip this many', (v) => (v === '0' ? 0 : positiveInteger('--offset')(v)))
      .option('--json', 'print the API response as JSON'),
    'metal machines ls',
    'metal machines ls --status ready --json | jq -r ".items[].hostname"',
    'metal machines ls -l role=web,rack=r12',
    'metal machines ls --profile web --out-of-date',
  ).action(async (opts: { status?: string; search?: string; selector?: string; profile?: string; outOfDate?: boolean; limit: number; offset?: number; json?: boolean }) => {
    // Checked here too, so a typo is reported before any request.
    const selector = opts.selector === undefined ? undefined : selectorArgument(opts.selector);
    const list = await clientFromEnvironment().get<MachineList>('/api/v1/machines', {
      query: { status: opts.status, search: opts.search, selector, profile: opts.profile, out_of_date: opts.outOfDate ? 'true' : undefined, limit: opts.limit, offset: opts.offset },
    });
    if (opts.json) return printJson(list);
    if (list.items.length === 0) {
      process.stderr.write(list.total > 0 ? `no machines in this page (${list.total} in all)\n` : 'no machines\n');
      return;
    }
    printLines(machineRows(list.items, shouldColour(process.stdout)));
    if (list.total > list.items.length) process.stderr.write(`${list.items.length} of ${list.total} machines shown; use --limit and --offset for more\n`);
  });

  withExamples(
    machines.command('show').description('show one machine: hardware, status and NixOS configuration').argument('<tag>', 'service tag or id').option('--json', 'print the API response as JSON'),
    'metal machines show ABC123',
    'metal machines show ABC123 --json | jq .hardware',
  ).action(async (tag: string, opts: { json?: boolean }) => {
    const machine = await clientFromEnvironment().get<Machine>(`/api/v1/machines/${segment(tag)}`);
    if (opts.json) return printJson(machine);
    printLines(describeMachine(machine, shouldColour(process.stdout)));
  });

  withExamples(
    machines
      .command('set')
      .description('change a machine’s hostname, description, profile or NixOS configuration')
      .argument('<tag>', 'service tag or id')
      .option('--hostname <name>', "an RFC 1123 label, e.g. web-01 ('' clears it)")
      .option('--profile <name>', 'the profile whose module is built before its own (names it from the profile’s pattern when it has no hostname)')
      .option('--no-profile', 'remove its profile')
      .option('--description <text>', 'free text')
      .option('--config <FILE|DIR>', 'the NixOS configuration to build: one module from a file (- reads standard input), or a directory whose configuration.nix imports its other files')
      .option('--json', 'print the updated machine as JSON'),
    'metal machines set ABC123 --hostname web-01 --config ./web-01.nix',
    'metal machines set ABC123 --config ./web-01/   # configuration.nix, hardware.nix, modules/*.nix',
    'nix-instantiate --parse web.nix >/dev/null && metal machines set ABC123 --config - < web.nix',
  ).action(async (tag: string, opts: { hostname?: string; description?: string; config?: string; profile?: string | false; json?: boolean }) => {
    const body: Record<string, unknown> = {};
    // '' clears it, as an empty field does on the dashboard.
    if (opts.hostname !== undefined) body.hostname = opts.hostname === '' ? null : opts.hostname;
    if (opts.profile !== undefined) body.profile = opts.profile === false ? null : opts.profile;
    if (opts.description !== undefined) body.description = opts.description;
    if (opts.config !== undefined) {
      if (opts.config !== '-' && isDirectory(opts.config)) {
        const read = readConfigDirectory(opts.config);
        for (const s of read.skipped) process.stderr.write(`metal: left out ${printable(s)}\n`);
        body.nixos_files = read.files;
      } else {
        body.nixos_config = await readTextArgument(opts.config, MAX_CONFIG_BYTES);
      }
    }
    if (Object.keys(body).length === 0) throw new CliError('nothing to change: give --hostname, --description, --profile or --config');
    const machine = await clientFromEnvironment().put<Machine>(`/api/v1/machines/${segment(tag)}`, body);
    if (opts.json) return printJson(machine);
    const saved = Object.keys(body).join(', ').replace('nixos_config', 'configuration').replace('nixos_files', `configuration (${Object.keys(machine.nixos_files ?? {}).length} files)`);
    process.stdout.write(`${printable(machine.service_tag)}: ${saved} saved; status ${colourStatus(machine.status, shouldColour(process.stdout))}\n`);
  });

  withExamples(
    machines
      .command('config')
      .description('print a machine’s NixOS configuration files, or write them into a directory')
      .argument('<tag>', 'service tag or id')
      .option('--export <DIR>', 'write each file into DIR (created when missing; files of the same name are replaced)')
      .option('--json', 'print the files as a JSON object of file name → text'),
    'metal machines config ABC123',
    'metal machines config ABC123 --export ./web-01/ && $EDITOR ./web-01/hardware.nix && metal machines set ABC123 --config ./web-01/',
  ).action(async (tag: string, opts: { export?: string; json?: boolean }) => {
    const machine = await clientFromEnvironment().get<Machine>(`/api/v1/machines/${segment(tag)}`);
    const files = machine.nixos_files ?? {};
    if (opts.export !== undefined) {
      if (Object.keys(files).length === 0) throw new CliError(`${machine.service_tag} has no configuration yet`);
      for (const name of writeConfigDirectory(opts.export, files)) process.stderr.write(`wrote ${printable(name)}\n`);
      return;
    }
    if (opts.json) return printJson(files);
    if (Object.keys(files).length === 0) {
      process.stderr.write(`${printable(machine.service_tag)} has no configuration: metal machines set ${machine.service_tag} --config FILE|DIR\n`);
      return;
    }
    for (const [name, text] of Object.entries(files)) {
      printLines([`# ==> ${printable(name)} <==`, ...text.replace(/\n$/, '').split('\n').map((l) => printable(l))]);
    }
  });

  withExamples(
    machines
      .command('label')
      .description('set (key=value) or remove (key-) labels on a machine, as kubectl label does')
      .argument('<tag>', 'service tag or id')
      .argument('<changes...>', 'key=value to set, key- to remove')
      .option('--json', 'print the updated machine as JSON'),
    'metal machines label ABC123 role=web rack=r12',
    'metal machines label ABC123 gpu-',
  ).action(async (tag: string, changes: string[], opts: { json?: boolean }) => {
    const client = clientFromEnvironment();
    const current = await client.get<Machine>(`/api/v1/machines/${segment(tag)}`);
    let labels: Record<string, string>;
    try {
      labels = applyLabelArgs(current.labels ?? {}, changes);
    } catch (err) {
      throw new CliError((err as Error).message);
    }
    const machine = await client.put<Machine>(`/api/v1/machines/${segment(tag)}`, { labels });
    if (opts.json) return printJson(machine);
    process.stdout.write(`${printable(machine.service_tag)}: labels ${printableLabels(machine.labels) || '(none)'}\n`);
  });

  withExamples(
    machines
      .command('events')
      .description('what happened to a machine and who did it, newest first')
      .argument('<tag>', 'service tag or id')
      .option('--limit <n>', 'at most this many (1-500)', positiveInteger('--limit'), 20)
      .option('--json', 'print the API response as JSON'),
    'metal machines events ABC123 --limit 5',
  ).action(async (tag: string, opts: { limit: number; json?: boolean }) => {
    const list = await clientFromEnvironment().get<{ items: Event[]; total: number }>(`/api/v1/machines/${segment(tag)}/events`, { query: { limit: opts.limit } });
    if (opts.json) return printJson(list);
    printLines(formatTable(['TIME', 'KIND', 'ACTOR', 'MESSAGE'], list.items.map((e) => [e.created_at.replace(/\.\d+Z$/, 'Z'), printable(e.kind), printable(e.actor), printable(e.message)])));
  });

  withExamples(
    machines
      .command('identity')
      .description('settle a machine’s identity conflict: accept the MAC and UUID it claimed (others owning them give them up), or reject them')
      .argument('<tag>', 'service tag or id')
      .addArgument(new Argument('<decision>', 'accept or reject').choices(['accept', 'reject']))
      .option('--json', 'print the API response as JSON'),
    'metal machines identity ABC123 accept',
  ).action(async (tag: string, decision: 'accept' | 'reject', opts: { json?: boolean }) => {
    const m = await clientFromEnvironment().post<Machine>(`/api/v1/machines/${segment(tag)}/identity`, { action: decision });
    if (opts.json) return printJson(m);
    process.stdout.write(`${printable(m.service_tag)}: identity ${decision === 'accept' ? 'accepted' : 'rejected'}; its MAC is ${printable(m.mac_address) || '-'}\n`);
  });

  withExamples(
    machines
      .command('rollback')
      .description('boot an earlier build again: the one before the current, or --build N (its image must still be kept)')
      .argument('<tag>', 'service tag or id')
      .option('--build <n>', 'the build to boot', positiveInteger('--build'))
      .option('--json', 'print the API response as JSON'),
    'metal machines rollback ABC123',
    'metal machines rollback ABC123 --build 41',
  ).action(async (tag: string, opts: { build?: number; json?: boolean }) => {
    const result = await clientFromEnvironment().post<{ service_tag: string; build_id: number; previous_build_id: number | null }>(
      `/api/v1/machines/${segment(tag)}/rollback`,
      opts.build === undefined ? {} : { build_id: opts.build },
    );
    if (opts.json) return printJson(result);
    process.stdout.write(`${printable(result.service_tag)}: boots build ${result.build_id} from its next boot (was ${result.previous_build_id ?? 'none'})\n`);
  });

  withExamples(
    machines.command('rm').description('remove a machine and its images').argument('<tag>', 'service tag or id').option('-y, --yes', 'do not ask for confirmation'),
    'metal machines rm ABC123 --yes',
  ).action(async (tag: string, opts: { yes?: boolean }) => {
    if (!opts.yes) {
      if (!process.stdin.isTTY) throw new CliError(`not removing ${printable(tag)} without --yes (standard input is not a terminal to ask on)`);
      if (!(await confirm(`remove machine ${printable(tag)} and its images?`))) throw new CliError('not removed');
    }
    await clientFromEnvironment().delete(`/api/v1/machines/${segment(tag)}`);
    process.stdout.write(`${printable(tag)} removed\n`);
  });
}
