import type { Command } from 'commander';
import type { Event } from '../core/types.ts';
import { clientFromEnvironment } from './client/client-settings.ts';
import { positiveInteger, printJson, printLines, withExamples } from './client/output.ts';
import { formatTable, printable } from './client/table.ts';

/** `metal events`: the audit trail over the API (admins), newest first. */
export function registerEventCommands(program: Command): void {
  withExamples(
    program
      .command('events')
      .description('the audit trail: what happened and who did it, newest first (admin role)')
      .option('--kind <kind>', 'only events of this kind, e.g. token.created')
      .option('--actor <actor>', 'only events by this actor: user:alice, token:alice/ci, machine:ABC123, system, or a kind alone (token)')
      .option('--machine <tag>', 'only events of this machine (its service tag, or the id of a deleted one)')
      .option('--since <time>', 'at or after this ISO 8601 time')
      .option('--until <time>', 'before this ISO 8601 time')
      .option('--limit <n>', 'at most this many (1-500)', positiveInteger('--limit'), 50)
      .option('--json', 'print the API response as JSON'),
    'metal events --kind machine.identity_conflict',
    'metal events --actor user:alice --since 2026-11-01T00:00:00Z',
  ).action(async (opts: { kind?: string; actor?: string; machine?: string; since?: string; until?: string; limit: number; json?: boolean }) => {
    const query = { kind: opts.kind, actor: opts.actor, machine: opts.machine, since: opts.since, until: opts.until, limit: opts.limit };
    const list = await clientFromEnvironment().get<{ items: Event[]; total: number }>('/api/v1/events', { query });
    if (opts.json) return printJson(list);
    if (list.items.length === 0) return void process.stderr.write('no events match\n');
    printLines(
      formatTable(
        ['TIME', 'KIND', 'ACTOR', 'MACHINE', 'MESSAGE'],
        list.items.map((e) => [e.created_at.replace(/\.\d+Z$/, 'Z'), printable(e.kind), printable(e.actor), e.machine_id === null ? '-' : String(e.machine_id), printable(e.message)]),
      ),
    );
    if (list.total > list.items.length) process.stderr.write(`${list.items.length} of ${list.total} shown (--limit, --since, --until)\n`);
  });
}
