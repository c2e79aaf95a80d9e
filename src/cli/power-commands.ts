import { Option, type Command } from 'commander';
import { CliError, segment } from './client/api-client.ts';
import { clientFromEnvironment } from './client/client-settings.ts';
import { printJson, printLines, withExamples } from './client/output.ts';
import { formatTable, printable } from './client/table.ts';
import { confirm, readTextArgument } from './client/terminal-input.ts';

/** A power action waits for the BMC (each call with a timeout and one retry) and for the state it leads to. */
const POWER_TIMEOUT_MS = 180_000;
const ACTIONS = ['on', 'off', 'cycle', 'reset', 'status'] as const;
/** Actions that interrupt a running machine: asked for on a terminal, `--yes` otherwise. */
const DISRUPTIVE = new Set(['off', 'cycle', 'reset']);

interface PowerState {
  power_state: 'on' | 'off' | 'unknown';
  checked_at: string | null;
}

interface BulkResult {
  id: string;
  ok: boolean;
  power_state?: string;
  checked_at?: string | null;
  status?: number;
  error?: { code: string; message: string };
}

interface BmcView extends PowerState {
  type: string;
  address: string;
  username: string;
  credential_set: string | null;
  verify_tls: boolean;
  tls_fingerprint: string | null;
  tls_ca_bundle: string | null;
  auth: string;
  system_id: string | null;
  reboot_on_publish: boolean;
}

/** `metal power on|off|cycle|reset|status TAG...` and `metal bmc set|show|rm`. */
export function registerPowerCommands(program: Command): void {
  const power = withExamples(
    program.command('power').description('switch machines on, off, cycle or reset them through their BMC, or ask their power state'),
    'metal power on ABC123 --pxe',
    'metal power cycle ABC123 DEF456 --yes',
    'metal power status ABC123',
  );
  for (const action of ACTIONS) {
    const cmd = power
      .command(action)
      .description(action === 'status' ? 'ask each BMC for the power state now' : `power ${action} through each machine's BMC; prints the state after it`)
      .argument('<tags...>', 'service tags or ids')
      .option('--json', 'print the API response as JSON');
    if (action !== 'off' && action !== 'status') cmd.option('--pxe', 'the next boot goes to the network (PXE)');
    if (DISRUPTIVE.has(action)) cmd.option('-y, --yes', 'do not ask for confirmation');
    withExamples(cmd, `metal power ${action} ABC123${action === 'cycle' ? ' --pxe --yes' : ''}`).action(async (tags: string[], opts: { json?: boolean; pxe?: boolean; yes?: boolean }) => {
      if (DISRUPTIVE.has(action) && !opts.yes) {
        const list = tags.map(printable).join(', ');
        if (!process.stdin.isTTY) throw new CliError(`not powering ${action} ${list} without --yes (standard input is not a terminal to ask on)`);
        if (!(await confirm(`power ${action} ${list}?`))) throw new CliError('nothing done');
      }
      const request = { action, ...(opts.pxe ? { boot_device: 'pxe' } : {}) };
      const client = clientFromEnvironment();
      if (tags.length === 1) {
        const state = await client.post<PowerState>(`/api/v1/machines/${segment(tags[0]!)}/power`, request, { timeoutMs: POWER_TIMEOUT_MS });
        if (opts.json) return printJson(state);
        printLines([`${printable(tags[0]!)}: ${state.power_state}`]);
        return;
      }
      const { results } = await client.post<{ results: BulkResult[] }>('/api/v1/machines/bulk', { action: 'power', ids: tags, power: request }, { timeoutMs: POWER_TIMEOUT_MS });
      if (opts.json) printJson({ results });
      else {
        printLines(
          formatTable(
            ['MACHINE', 'POWER', 'ERROR'],
            results.map((r) => [printable(r.id), r.ok ? (r.power_state ?? '-') : 'failed', r.ok ? '' : printable(`${r.error?.code ?? ''}: ${r.error?.message ?? ''}`)]),
          ),
        );
      }
      const failed = results.filter((r) => !r.ok).length;
      if (failed > 0) throw new CliError(`${failed} of ${results.length} machines failed`);
    });
  }

  const bmc = withExamples(
    program.command('bmc').description('set, show or remove a machine’s BMC (IPMI or Redfish)'),
    'metal bmc set ABC123 --type ipmi --address 10.0.0.21 --user admin --password-file ./bmc-pw',
    'metal bmc set ABC123 --type redfish --address idrac-01.example.net --credential-set rack-a --reboot-on-publish',
  );

  withExamples(
    bmc
      .command('set')
      .description('set a machine’s BMC; the password is read from a file (- for standard input), never from the command line')
      .argument('<tag>', 'service tag or id')
      .addOption(new Option('--type <type>', 'the protocol').choices(['ipmi', 'redfish']).makeOptionMandatory())
      .option('--address <host[:port]>', 'the BMC’s address (default: the one the machine reported)')
      .option('--user <name>', 'BMC user name')
      .option('--password-file <FILE>', 'file holding the BMC password (its first line); - reads standard input')
      .option('--credential-set <name>', 'use a named credential set instead of --user and --password-file')
      .option('--no-verify-tls', 'Redfish: accept any certificate (self-signed lab BMCs)')
      .option('--tls-fingerprint <sha256>', 'Redfish: the certificate’s SHA-256 fingerprint')
      .option('--tls-ca-bundle <FILE>', 'Redfish: PEM CA bundle the certificate must chain to')
      .addOption(new Option('--auth <kind>', 'Redfish: sessions or HTTP basic').choices(['session', 'basic']))
      .option('--system-id <id>', 'Redfish: the ComputerSystem id (default: the first)')
      .option('--reboot-on-publish', 'reboot into each new image when its build publishes')
      .option('--no-reboot-on-publish', 'do not reboot when a build publishes')
      .option('--json', 'print the API response as JSON'),
    'metal bmc set ABC123 --type ipmi --address 10.0.0.21 --user admin --password-file ./bmc-pw',
  ).action(
    async (
      tag: string,
      opts: {
        type: string;
        address?: string;
        user?: string;
        passwordFile?: string;
        credentialSet?: string;
        verifyTls: boolean;
        tlsFingerprint?: string;
        tlsCaBundle?: string;
        auth?: string;
        systemId?: string;
        rebootOnPublish?: boolean;
        json?: boolean;
      },
    ) => {
      const body: Record<string, unknown> = { type: opts.type };
      if (opts.address !== undefined) body.address = opts.address;
      if (opts.user !== undefined) body.username = opts.user;
      if (opts.passwordFile !== undefined) body.password = await readPasswordFile(opts.passwordFile);
      if (opts.credentialSet !== undefined) body.credential_set = opts.credentialSet;
      if (opts.type === 'redfish') {
        if (!opts.verifyTls) body.verify_tls = false;
        if (opts.tlsFingerprint !== undefined) body.tls_fingerprint = opts.tlsFingerprint;
        if (opts.tlsCaBundle !== undefined) body.tls_ca_bundle = await readTextArgument(opts.tlsCaBundle, 64 * 1024);
        if (opts.auth !== undefined) body.auth = opts.auth;
        if (opts.systemId !== undefined) body.system_id = opts.systemId;
      } else if (!opts.verifyTls || opts.tlsFingerprint || opts.tlsCaBundle || opts.auth || opts.systemId) {
        throw new CliError('--no-verify-tls, --tls-fingerprint, --tls-ca-bundle, --auth and --system-id apply to --type redfish only');
      }
      if (opts.rebootOnPublish !== undefined) body.reboot_on_publish = opts.rebootOnPublish;
      const view = await clientFromEnvironment().put<BmcView>(`/api/v1/machines/${segment(tag)}/bmc`, body);
      if (opts.json) return printJson(view);
      printLines(describeBmc(tag, view));
    },
  );

  withExamples(
    bmc.command('show').description('show a machine’s BMC and power state (never the password)').argument('<tag>', 'service tag or id').option('--json', 'print the API response as JSON'),
    'metal bmc show ABC123',
  ).action(async (tag: string, opts: { json?: boolean }) => {
    const view = await clientFromEnvironment().get<BmcView>(`/api/v1/machines/${segment(tag)}/bmc`);
    if (opts.json) return printJson(view);
    printLines(describeBmc(tag, view));
  });

  const sets = withExamples(
    bmc.command('sets').description('BMC credential sets: named once, referenced by many machines (admin)'),
    'metal bmc sets add rack-a --user root --password-file ./rack-a-pw',
  );
  withExamples(sets.command('ls').description('list credential sets (never their passwords)').option('--json', 'print the API response as JSON'), 'metal bmc sets ls').action(
    async (opts: { json?: boolean }) => {
      const list = await clientFromEnvironment().get<{ items: Array<{ name: string; username: string; machines: number; updated_at: string }> }>('/api/v1/bmc-credential-sets');
      if (opts.json) return printJson(list);
      printLines(formatTable(['NAME', 'USER', 'MACHINES', 'UPDATED'], list.items.map((c) => [printable(c.name), printable(c.username), String(c.machines), c.updated_at.replace(/\.\d+Z$/, 'Z')])));
    },
  );
  withExamples(
    sets
      .command('add')
      .description('create a credential set; the password is read from a file (- for standard input)')
      .argument('<name>', 'e.g. rack-a')
      .requiredOption('--user <name>', 'BMC user name')
      .requiredOption('--password-file <FILE>', 'file holding the password (its first line)'),
    'metal bmc sets add rack-a --user root --password-file ./rack-a-pw',
  ).action(async (name: string, opts: { user: string; passwordFile: string }) => {
    await clientFromEnvironment().post('/api/v1/bmc-credential-sets', { name, username: opts.user, password: await readPasswordFile(opts.passwordFile) });
    process.stdout.write(`credential set ${printable(name)} created\n`);
  });
  withExamples(
    sets
      .command('set')
      .description('change a credential set’s user or password (every machine using it follows)')
      .argument('<name>', 'the set')
      .option('--user <name>', 'BMC user name')
      .option('--password-file <FILE>', 'file holding the new password (its first line)'),
    'metal bmc sets set rack-a --password-file ./rack-a-pw-2025',
  ).action(async (name: string, opts: { user?: string; passwordFile?: string }) => {
    const body: Record<string, string> = {};
    if (opts.user !== undefined) body.username = opts.user;
    if (opts.passwordFile !== undefined) body.password = await readPasswordFile(opts.passwordFile);
    if (Object.keys(body).length === 0) throw new CliError('nothing to change: give --user or --password-file');
    await clientFromEnvironment().put(`/api/v1/bmc-credential-sets/${segment(name)}`, body);
    process.stdout.write(`credential set ${printable(name)} changed\n`);
  });
  withExamples(sets.command('rm').description('delete a credential set no machine uses').argument('<name>', 'the set'), 'metal bmc sets rm rack-a').action(async (name: string) => {
    await clientFromEnvironment().delete(`/api/v1/bmc-credential-sets/${segment(name)}`);
    process.stdout.write(`credential set ${printable(name)} deleted\n`);
  });

  withExamples(bmc.command('rm').description('forget a machine’s BMC').argument('<tag>', 'service tag or id'), 'metal bmc rm ABC123').action(async (tag: string) => {
    await clientFromEnvironment().delete(`/api/v1/machines/${segment(tag)}/bmc`);
    process.stdout.write(`${printable(tag)}: BMC removed\n`);
  });
}

/** The first line of a password file (`-`: standard input). */
async function readPasswordFile(path: string): Promise<string> {
  const password = (await readTextArgument(path, 4096)).split(/\r?\n/)[0] ?? '';
  if (!password) throw new CliError(`no password in ${path}`);
  return password;
}

function describeBmc(tag: string, v: BmcView): string[] {
  const fields: Array<[string, string]> = [
    ['machine', printable(tag)],
    ['bmc', `${v.type} ${printable(v.address)}`],
    ['user', v.credential_set ? `${printable(v.username)} (credential set ${printable(v.credential_set)})` : printable(v.username)],
    ['power', `${v.power_state}${v.checked_at ? ` (checked ${v.checked_at.replace(/\.\d+Z$/, 'Z')})` : ''}`],
    ['reboot on publish', v.reboot_on_publish ? 'yes' : 'no'],
  ];
  if (v.type === 'redfish') {
    fields.push(['tls', v.tls_fingerprint ? `pinned ${v.tls_fingerprint}` : v.tls_ca_bundle ? 'CA bundle' : v.verify_tls ? 'verified' : 'not verified']);
    fields.push(['auth', v.auth], ['system', v.system_id ?? '(first)']);
  }
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, val]) => `${`${k}:`.padEnd(width + 2)}${val}`);
}
