import { Option, type Command } from 'commander';
import type { Rollout } from '../core/rollout-machine.ts';
import { CliError, segment, type ApiClient } from './client/api-client.ts';
import { clientFromEnvironment } from './client/client-settings.ts';
import { positiveInteger, printJson, printLines, withExamples } from './client/output.ts';
import { formatTable, printable } from './client/table.ts';
import { formatSelector, parseSelector } from '../core/labels.ts';

const ACTIVE = ['building', 'rolling', 'paused'];
const count = (name: string) => (v: string) => (v === '0' ? 0 : positiveInteger(name)(v));

/** `wave 2/5: 6 healthy, 5 updating, 9 waiting` — a rollout's progress on one line. */
export function describeProgress(r: Rollout): string {
  const by = new Map<string, number>();
  for (const m of r.machines) by.set(m.state, (by.get(m.state) ?? 0) + 1);
  const parts = ['healthy', 'updating', 'built', 'building', 'unhealthy', 'build_failed', 'rolled_back', 'cancelled', 'unchanged']
    .filter((s) => by.has(s))
    .map((s) => `${by.get(s)} ${s === 'built' ? 'waiting' : s.replace('_', ' ')}`);
  return `rollout ${r.id} ${r.state}, wave ${r.wave}/${r.waves}: ${parts.join(', ') || 'no machines'}${r.message ? ` (${printable(r.message)})` : ''}`;
}

function machineRows(r: Rollout): string[] {
  return formatTable(
    ['SERVICE TAG', 'WAVE', 'FROM', 'TO', 'STATE', 'UPDATED', 'MESSAGE'],
    r.machines.map((m) => [
      printable(m.service_tag),
      m.wave === 0 ? '-' : String(m.wave),
      m.from_build_id === null ? '-' : String(m.from_build_id),
      m.to_build_id === null ? '-' : String(m.to_build_id),
      m.state,
      m.updated_at.replace(/\.\d+Z$/, 'Z'),
      printable(m.message ?? ''),
    ]),
  );
}

/** Polls the rollout until it ends, printing its progress when it changes; exit 0 only if it succeeded. */
async function waitForRollout(client: ApiClient, id: number, intervalMs = 2000): Promise<Rollout> {
  let last = '';
  let stop = false;
  const onSigint = () => {
    process.stderr.write(`metal: stopped waiting; rollout ${id} goes on (metal rollout show ${id}, or metal rollout cancel ${id})\n`);
    stop = true;
  };
  process.once('SIGINT', onSigint);
  try {
    for (;;) {
      const r = await client.get<Rollout>(`/api/v1/rollouts/${id}`);
      const line = describeProgress(r);
      if (line !== last) process.stderr.write(`metal: ${line}\n`);
      last = line;
      if (!ACTIVE.includes(r.state)) return r;
      if (stop) throw new CliError('interrupted', 130);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
      if (stop) throw new CliError('interrupted', 130);
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** `metal rollout start|ls|show|pause|resume|cancel`. */
export function registerRolloutCommands(program: Command): void {
  const rollout = withExamples(
    program.command('rollout').description('move machines to new images in waves, gated by their booted reports'),
    'metal rollout start -l role=web --canary 1 --batch 5 --wait',
    'metal rollout ls',
  );

  withExamples(
    rollout
      .command('start')
      .description('build what the selected machines need, then reboot them into it wave by wave')
      .requiredOption('-l, --selector <selector>', 'the machines, e.g. "role=web,rack in (r1,r2)"')
      .addOption(new Option('--build <mode>', 'missing: only machines whose image is not of their current configuration; always: every one').choices(['missing', 'always']).default('missing'))
      .option('--canary <n>', 'machines in the first wave', count('--canary'), 1)
      .option('--batch <n>', 'machines in each later wave', positiveInteger('--batch'), 5)
      .option('--max-unavailable <n>', 'most machines of a wave rebooting at once (0: the batch)', count('--max-unavailable'), 0)
      .option('--max-failures <n>', 'failures tolerated; one more stops and rolls the wave back', count('--max-failures'), 0)
      .option('--health-timeout <seconds>', 'how long a machine has to report its new build', positiveInteger('--health-timeout'), 600)
      .addOption(new Option('--reboot <how>', 'power: through the BMC; agent: the image reboots itself; none: wait').choices(['power', 'agent', 'none']).default('agent'))
      .option('-w, --wait', 'show progress until it ends; exit 0 only if it succeeded')
      .option('--json', 'print the rollout as JSON (with --wait: as it ended)'),
    'metal rollout start -l role=web --canary 1 --batch 5 --wait',
    'metal rollout start -l "rack in (r12)" --build always --reboot power --max-failures 1',
  ).action(
    async (opts: { selector: string; build: string; canary: number; batch: number; maxUnavailable: number; maxFailures: number; healthTimeout: number; reboot: string; wait?: boolean; json?: boolean }) => {
      let selector: string;
      try {
        selector = formatSelector(parseSelector(opts.selector));
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      const client = clientFromEnvironment();
      const started = await client.post<Rollout>('/api/v1/rollouts', {
        selector,
        build: opts.build,
        canary: opts.canary,
        batch_size: opts.batch,
        max_unavailable: opts.maxUnavailable,
        max_failures: opts.maxFailures,
        health_timeout_seconds: opts.healthTimeout,
        reboot: opts.reboot,
      });
      if (!opts.wait) {
        if (opts.json) return printJson(started);
        process.stdout.write(`rollout ${started.id} started: ${started.machines.length} machines, ${started.waves} waves (metal rollout show ${started.id})\n`);
        return;
      }
      const done = await waitForRollout(client, started.id);
      if (opts.json) printJson(done);
      if (done.state !== 'succeeded') throw new CliError(`rollout ${done.id} ${done.state}${done.message ? `: ${done.message}` : ''}`);
    },
  );

  withExamples(
    rollout.command('ls').description('rollouts, newest first').option('--limit <n>', 'at most this many (1-500)', positiveInteger('--limit'), 20).option('--json', 'print the API response as JSON'),
    'metal rollout ls',
  ).action(async (opts: { limit: number; json?: boolean }) => {
    const list = await clientFromEnvironment().get<{ items: Rollout[]; total: number }>('/api/v1/rollouts', { query: { limit: opts.limit } });
    if (opts.json) return printJson(list);
    if (list.items.length === 0) return void process.stderr.write('no rollouts\n');
    printLines(
      formatTable(
        ['ID', 'STATE', 'WAVE', 'MACHINES', 'SELECTOR', 'BY', 'STARTED'],
        list.items.map((r) => [String(r.id), r.state, `${r.wave}/${r.waves}`, String(r.machines.length), printable(r.selector), printable(r.created_by), r.created_at.replace(/\.\d+Z$/, 'Z')]),
      ),
    );
  });

  withExamples(
    rollout.command('show').description('one rollout: per machine its wave, from and to build and state').argument('<id>', 'rollout id', positiveInteger('<id>')).option('--json', 'print the API response as JSON'),
    'metal rollout show 3',
  ).action(async (id: number, opts: { json?: boolean }) => {
    const r = await clientFromEnvironment().get<Rollout>(`/api/v1/rollouts/${segment(id)}`);
    if (opts.json) return printJson(r);
    printLines([describeProgress(r), `selector ${printable(r.selector)}; canary ${r.canary}, batches of ${r.batch_size}, at most ${r.max_failures} failures, ${r.health_timeout_seconds} s to report, reboot ${r.reboot}`, ...machineRows(r)]);
  });

  for (const [action, text] of [
    ['pause', 'start no new wave (the wave in flight is still watched)'],
    ['resume', 'go on with a paused rollout'],
    ['cancel', 'stop it: running builds are cancelled, machines already moved stay'],
  ] as const) {
    withExamples(rollout.command(action).description(text).argument('<id>', 'rollout id', positiveInteger('<id>')), `metal rollout ${action} 3`).action(async (id: number) => {
      const r = await clientFromEnvironment().post<Rollout>(`/api/v1/rollouts/${segment(id)}/${action}`);
      process.stdout.write(`${describeProgress(r)}\n`);
    });
  }
}
