import { randomBytes } from 'node:crypto';
import { InvalidArgumentError, type Command } from 'commander';
import { clientFromEnvironment } from './client/client-settings.ts';
import { positiveInteger, printJson, printLines, withExamples } from './client/output.ts';
import { formatTable, printable } from './client/table.ts';

/** A webhook endpoint as the API lists it (never its secret). */
interface Webhook {
  id: number;
  url: string;
  events: string[];
  enabled: boolean;
  failing_since: string | null;
  disabled_reason: string | null;
}

interface Delivery {
  id: number;
  delivery_id: string;
  event_type: string;
  status: string;
  attempts: number;
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
}

function eventList(value: string): string[] {
  const events = value.split(',').map((e) => e.trim()).filter(Boolean);
  if (events.length === 0) throw new InvalidArgumentError('--events needs at least one event type, e.g. machine.enrolled,build.failed or *');
  return events;
}

const short = (time: string | null) => (time ? time.replace(/\.\d+Z$/, 'Z') : '-');

/** `metal webhooks add|ls|set|rm|deliveries|redeliver` (admin): endpoints that receive signed events. */
export function registerWebhookCommands(program: Command): void {
  const hooks = withExamples(
    program.command('webhooks').description('endpoints that receive signed events (admin)'),
    'metal webhooks add https://hooks.example.com/metal --events machine.enrolled,build.failed',
    'metal webhooks deliveries 1',
  );

  withExamples(
    hooks
      .command('add')
      .description('add an endpoint; without --secret one is generated and printed once')
      .argument('<url>', 'where events are POSTed (http or https)')
      .requiredOption('--events <list>', 'comma-separated event types, a family such as build.*, or *', eventList)
      .option('--secret <secret>', 'HMAC key of X-Metal-Signature (16 to 256 characters)')
      .option('--disabled', 'add it switched off')
      .option('--json', 'print the API response as JSON'),
    'metal webhooks add https://hooks.example.com/metal --events machine.enrolled,build.failed',
    "metal webhooks add https://ci.example.com/hook --events 'build.*' --secret \"$HOOK_SECRET\"",
  ).action(async (url: string, opts: { events: string[]; secret?: string; disabled?: boolean; json?: boolean }) => {
    const secret = opts.secret ?? randomBytes(24).toString('base64url');
    const created = await clientFromEnvironment().post<Webhook>('/api/v1/webhooks', { url, events: opts.events, secret, enabled: !opts.disabled });
    if (opts.json) return printJson(created);
    process.stderr.write(`webhook ${created.id} added for ${printable(created.url)} (${created.events.join(', ')})\n`);
    if (!opts.secret) {
      process.stderr.write('its signing secret, shown only now:\n');
      process.stdout.write(`${secret}\n`);
    }
  });

  withExamples(hooks.command('ls').description('list endpoints').option('--json', 'print the API response as JSON'), 'metal webhooks ls').action(async (opts: { json?: boolean }) => {
    const list = await clientFromEnvironment().get<{ items: Webhook[] }>('/api/v1/webhooks');
    if (opts.json) return printJson(list);
    if (list.items.length === 0) return void process.stderr.write('no webhooks\n');
    printLines(
      formatTable(
        ['ID', 'URL', 'EVENTS', 'ENABLED', 'FAILING SINCE', 'DISABLED BECAUSE'],
        list.items.map((w) => [String(w.id), printable(w.url), w.events.join(','), w.enabled ? 'yes' : 'no', short(w.failing_since), printable(w.disabled_reason ?? '-')]),
      ),
    );
  });

  withExamples(
    hooks
      .command('set')
      .description('change an endpoint (enabling it again restarts its failure clock)')
      .argument('<id>', 'webhook id (see metal webhooks ls)', positiveInteger('webhook id'))
      .option('--url <url>', 'a new URL')
      .option('--events <list>', 'new comma-separated event types', eventList)
      .option('--secret <secret>', 'a new signing secret')
      .option('--enable', 'switch it on')
      .option('--disable', 'switch it off')
      .option('--json', 'print the API response as JSON'),
    'metal webhooks set 1 --enable',
    "metal webhooks set 1 --events 'build.*,machine.enrolled'",
  ).action(async (id: number, opts: { url?: string; events?: string[]; secret?: string; enable?: boolean; disable?: boolean; json?: boolean }) => {
    if (opts.enable && opts.disable) throw new InvalidArgumentError('--enable and --disable exclude each other');
    const body: Record<string, unknown> = {};
    if (opts.url !== undefined) body.url = opts.url;
    if (opts.events !== undefined) body.events = opts.events;
    if (opts.secret !== undefined) body.secret = opts.secret;
    if (opts.enable) body.enabled = true;
    if (opts.disable) body.enabled = false;
    const updated = await clientFromEnvironment().put<Webhook>(`/api/v1/webhooks/${id}`, body);
    if (opts.json) return printJson(updated);
    process.stdout.write(`webhook ${id} updated (${updated.enabled ? 'enabled' : 'disabled'})\n`);
  });

  withExamples(hooks.command('rm').description('remove an endpoint and its deliveries').argument('<id>', 'webhook id', positiveInteger('webhook id')), 'metal webhooks rm 1').action(async (id: number) => {
    await clientFromEnvironment().delete(`/api/v1/webhooks/${id}`);
    process.stdout.write(`webhook ${id} removed\n`);
  });

  withExamples(
    hooks
      .command('deliveries')
      .description('deliveries to an endpoint, newest first: attempts, last status, next try')
      .argument('<id>', 'webhook id', positiveInteger('webhook id'))
      .option('--json', 'print the API response as JSON (with response excerpts)'),
    'metal webhooks deliveries 1',
  ).action(async (id: number, opts: { json?: boolean }) => {
    const list = await clientFromEnvironment().get<{ items: Delivery[]; total: number }>(`/api/v1/webhooks/${id}/deliveries`, { query: { limit: 100 } });
    if (opts.json) return printJson(list);
    if (list.items.length === 0) return void process.stderr.write('no deliveries\n');
    printLines(
      formatTable(
        ['ID', 'EVENT', 'STATUS', 'ATTEMPTS', 'LAST', 'NEXT TRY', 'ERROR'],
        list.items.map((d) => [String(d.id), d.event_type, d.status, String(d.attempts), d.last_status_code === null ? '-' : String(d.last_status_code), short(d.next_attempt_at), printable(d.last_error ?? '-')]),
      ),
    );
  });

  withExamples(
    hooks
      .command('redeliver')
      .description('send a delivery again, under a new delivery id')
      .argument('<id>', 'webhook id', positiveInteger('webhook id'))
      .argument('<delivery>', 'delivery id (see metal webhooks deliveries)', positiveInteger('delivery id')),
    'metal webhooks redeliver 1 42',
  ).action(async (id: number, delivery: number) => {
    const again = await clientFromEnvironment().post<Delivery>(`/api/v1/webhooks/${id}/deliveries/${delivery}/redeliver`, {});
    process.stdout.write(`delivery ${delivery} queued again as delivery ${again.id}\n`);
  });
}
