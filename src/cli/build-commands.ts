import type { Command } from 'commander';
import type { Build } from '../core/types.ts';
import { CliError, segment, type ApiClient } from './client/api-client.ts';
import { followBuild, isFinished } from './client/build-watcher.ts';
import { clientFromEnvironment } from './client/client-settings.ts';
import { positiveInteger, printJson, printLines, withExamples } from './client/output.ts';
import { colourStatus, formatTable, printable, printableLog, shouldColour, statusCell } from './client/table.ts';
import { describeBuildNixpkgs, distinctNixpkgs, shortNixpkgs } from '../core/build-nixpkgs.ts';

interface BuildList {
  items: Build[];
  total: number;
}

/** `GET /api/v1/builders`. */
interface BuilderList {
  items: Array<{ name: string; live: boolean; started_at: string; last_seen_at: string; concurrency: number; running: number; boot_check: string; secure_boot: string | null }>;
}

const NO_BUILDER = 'no builder is running; builds wait until one starts (metal builder, or metal serve on a host with Nix; docs/builder.md)';

/** Says so on standard error when a build was requested and no builder will take it. */
async function warnWithoutBuilder(client: ApiClient, build: Build): Promise<void> {
  if (build.status !== 'pending') return;
  const builders = await client.get<BuilderList>('/api/v1/builders').catch(() => undefined);
  if (builders && !builders.items.some((b) => b.live)) progress(`note: ${NO_BUILDER}`);
}

function seconds(from: string | null, to: string | null): string {
  if (!from) return '';
  const ms = (to ? Date.parse(to) : Date.now()) - Date.parse(from);
  if (!Number.isFinite(ms)) return '';
  const s = Math.max(0, ms) / 1000;
  return s < 10 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`;
}

function progress(line: string): void {
  process.stderr.write(`metal: ${line}\n`);
}

/** Streams the build's log until it finishes; exits non-zero unless it succeeded. */
async function waitForBuild(client: ApiClient, build: Build, logTo: (text: string) => void): Promise<Build> {
  const colour = shouldColour(process.stderr);
  const interrupt = new AbortController();
  const onSigint = () => {
    progress(`stopped waiting; build ${build.id} goes on (metal builds logs ${build.id} -f, or metal builds cancel ${build.id})`);
    interrupt.abort(new CliError('interrupted', 130));
  };
  process.once('SIGINT', onSigint);
  let status = build.status;
  let since = Date.now();
  // On a terminal, a quiet build still shows it is alive.
  const heartbeat = process.stderr.isTTY
    ? setInterval(() => progress(`build ${build.id} still ${status} (${Math.round((Date.now() - since) / 1000)} s)`), 30_000)
    : undefined;
  try {
    const finished = await followBuild(client, build.id, {
      write: logTo,
      signal: interrupt.signal,
      onStatus: (b) => {
        status = b.status;
        since = Date.now();
        if (!isFinished(b.status)) progress(`build ${b.id} ${colourStatus(b.status, colour)}${b.status === 'pending' ? ' (waiting for a builder)' : ''}`);
      },
    });
    const took = seconds(finished.started_at ?? finished.created_at, finished.completed_at);
    progress(`build ${finished.id} ${colourStatus(finished.status, colour)}${took ? ` after ${took}` : ''}`);
    return finished;
  } catch (err) {
    throw interrupt.signal.aborted ? interrupt.signal.reason : err;
  } finally {
    clearInterval(heartbeat);
    process.off('SIGINT', onSigint);
  }
}

function failureOf(build: Build): CliError | undefined {
  if (build.status === 'success') return undefined;
  return new CliError(`build ${build.id} ${build.status}${build.error ? `: ${printable(build.error)}` : ''}`);
}

function describeBuild(b: Build, colour: boolean): string[] {
  const fields: Array<[string, string]> = [
    ['build', String(b.id)],
    ['machine id', String(b.machine_id)],
    ['hostname', printable(b.hostname)],
    ['status', colourStatus(b.status, colour)],
    ['error', printable(b.error) || '-'],
    ['artifact url', printable(b.artifact_url) || '-'],
    ['nixpkgs', b.status === 'success' ? printable(describeBuildNixpkgs(b.nixpkgs)) : '-'],
    ['boot check', typeof b.boot_check_seconds === 'number' ? `booted in a VM in ${b.boot_check_seconds} s` : '-'],
    ['files', printable(Object.keys(b.config_files ?? {}).join(', ')) || '-'],
    ['attempts', String(b.attempts)],
    ['created', b.created_at],
    ['started', b.started_at ?? '-'],
    ['completed', b.completed_at ?? '-'],
    ['duration', seconds(b.started_at, b.completed_at) || '-'],
    ['log', `${b.log_output.length} characters (metal builds logs ${b.id})`],
  ];
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`);
}

/** `metal build TAG [--wait]` and `metal builds ls|show|logs|cancel`. */
export function registerBuildCommands(program: Command): void {
  withExamples(
    program
      .command('build')
      .description('build a machine’s NixOS image from its current configuration')
      .argument('<tag>', 'service tag or id')
      .option('-w, --wait', 'stream the build log and wait; exit 0 only if the build succeeds')
      .option('--json', 'print the build as JSON (with --wait: the finished build; the log then goes to standard error)'),
    'metal build ABC123 --wait',
    'metal build ABC123 --json | jq .id',
  ).action(async (tag: string, opts: { wait?: boolean; json?: boolean }) => {
    const client = clientFromEnvironment();
    const build = await client.post<Build>(`/api/v1/machines/${segment(tag)}/build`);
    await warnWithoutBuilder(client, build);
    if (!opts.wait) {
      if (opts.json) return printJson(build);
      process.stdout.write(`build ${build.id} requested for ${printable(tag)} (${build.status}); follow it with: metal builds logs ${build.id} -f\n`);
      return;
    }
    progress(`build ${build.id} requested for ${printable(tag)}`);
    const finished = await waitForBuild(client, build, (text) => (opts.json ? process.stderr : process.stdout).write(text));
    if (opts.json) printJson(finished);
    const failure = failureOf(finished);
    if (failure) throw failure;
  });

  withExamples(
    program.command('builders').description('the builders: which run, what they are building, when each was last heard from').option('--json', 'print the API response as JSON'),
    'metal builders',
  ).action(async (opts: { json?: boolean }) => {
    const list = await clientFromEnvironment().get<BuilderList>('/api/v1/builders');
    if (opts.json) return printJson(list);
    if (list.items.length === 0) return void process.stderr.write(`${NO_BUILDER}\n`);
    printLines(
      formatTable(
        ['NAME', 'STATE', 'BUILDS', 'BOOT CHECK', 'SECURE BOOT', 'STARTED', 'LAST SEEN'],
        list.items.map((b) => [
          printable(b.name),
          b.live ? 'live' : 'silent',
          `${b.running}/${b.concurrency}`,
          printable(b.boot_check),
          printable(b.secure_boot ?? '-'),
          b.started_at.replace(/\.\d+Z$/, 'Z'),
          b.last_seen_at.replace(/\.\d+Z$/, 'Z'),
        ]),
      ),
    );
    if (!list.items.some((b) => b.live)) process.stderr.write(`${NO_BUILDER}\n`);
  });

  const builds = withExamples(program.command('builds').description('inspect, follow and cancel image builds'), 'metal builds ls ABC123', 'metal builds logs 42 -f');

  withExamples(
    builds.command('ls').description('a machine’s builds, newest first').argument('<tag>', 'service tag or id').option('--limit <n>', 'at most this many (1-500)', positiveInteger('--limit'), 20).option('--json', 'print the API response as JSON'),
    'metal builds ls ABC123 --limit 5',
  ).action(async (tag: string, opts: { limit: number; json?: boolean }) => {
    const list = await clientFromEnvironment().get<BuildList>(`/api/v1/machines/${segment(tag)}/builds`, { query: { limit: opts.limit } });
    if (opts.json) return printJson(list);
    if (list.items.length === 0) return void process.stderr.write(`no builds of ${printable(tag)}\n`);
    const colour = shouldColour(process.stdout);
    printLines(
      formatTable(
        ['ID', 'STATUS', 'HOSTNAME', 'CREATED', 'DURATION', 'NIXPKGS', 'ERROR'],
        list.items.map((b) => [
          String(b.id),
          statusCell(b.status, colour),
          printable(b.hostname),
          b.created_at.replace(/\.\d+Z$/, 'Z'),
          seconds(b.started_at, b.completed_at) || '-',
          printable(shortNixpkgs(b.nixpkgs)),
          printable(b.error) || '-',
        ]),
      ),
    );
    const used = distinctNixpkgs(list.items.map((b) => b.nixpkgs));
    if (used.length > 1) process.stderr.write(`note: these builds used ${used.length} different nixpkgs (metal builds show ID for each)\n`);
  });

  withExamples(
    builds.command('show').description('one build: status, times, error').argument('<id>', 'build id', positiveInteger('build id')).option('--json', 'print the API response (with the log) as JSON'),
    'metal builds show 42',
  ).action(async (id: number, opts: { json?: boolean }) => {
    const build = await clientFromEnvironment().get<Build>(`/api/v1/builds/${id}`);
    if (opts.json) return printJson(build);
    printLines(describeBuild(build, shouldColour(process.stdout)));
  });

  withExamples(
    builds.command('logs').description('print a build’s log').argument('<id>', 'build id', positiveInteger('build id')).option('-f, --follow', 'keep streaming until the build finishes'),
    'metal builds logs 42',
    'metal builds logs 42 -f',
  ).action(async (id: number, opts: { follow?: boolean }) => {
    const client = clientFromEnvironment();
    if (!opts.follow) {
      const build = await client.get<Build>(`/api/v1/builds/${id}`);
      process.stdout.write(printableLog(build.log_output));
      return;
    }
    const finished = await waitForBuild(client, await client.get<Build>(`/api/v1/builds/${id}`), (text) => process.stdout.write(text));
    const failure = failureOf(finished);
    if (failure) throw failure;
  });

  withExamples(
    builds.command('cancel').description('stop a pending or running build').argument('<id>', 'build id', positiveInteger('build id')).option('--json', 'print the cancelled build as JSON'),
    'metal builds cancel 42',
  ).action(async (id: number, opts: { json?: boolean }) => {
    const build = await clientFromEnvironment().post<Build>(`/api/v1/builds/${id}/cancel`);
    if (opts.json) return printJson(build);
    process.stdout.write(`build ${build.id} ${build.status}\n`);
  });
}
