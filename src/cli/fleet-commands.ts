import type { RuleEffect } from '../core/rule-service.ts';
import type { Command } from 'commander';
import { formatLabels, formatSelector, parseSelector } from '../core/labels.ts';
import type { Profile } from '../core/profile.ts';
import { describeRuleMatch, describeRuleSet, type Rule } from '../core/rule.ts';
import { CliError, segment } from './client/api-client.ts';
import { clientFromEnvironment } from './client/client-settings.ts';
import { printJson, printLines, withExamples } from './client/output.ts';
import { formatTable, printable } from './client/table.ts';
import { confirm, readTextArgument } from './client/terminal-input.ts';

/** The largest NixOS module the API accepts. */
const MAX_CONFIG_BYTES = 256 * 1024;
/** The largest rule document read from a file. */
const MAX_RULE_BYTES = 64 * 1024;


interface BulkAnswer {
  matched: number;
  dry_run: boolean;
  results: Array<{ id: number; service_tag: string; ok: boolean; error?: { message: string }; changes?: string[]; hostname?: string | null; build_id?: number }>;
}

function selectorArgument(text: string): string {
  try {
    return formatSelector(parseSelector(text));
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

const labelText = (labels: Record<string, string>) => printable(formatLabels(labels)) || '-';

function effectRows(items: RuleEffect[]): string[] {
  return formatTable(
    ['SERVICE TAG', 'RULE', 'CHANGES', 'HOSTNAME', 'PROFILE', 'LABELS', 'BUILD'],
    items.map((i) => [
      printable(i.service_tag),
      printable(i.rule),
      i.error ? `error: ${printable(i.error.message)}` : i.changes.join(',') || '-',
      printable(i.hostname) || '-',
      printable(i.profile) || '-',
      labelText(i.labels),
      i.build ? 'yes' : 'no',
    ]),
  );
}

/** Reads a rule document (JSON) from a file or `-`. */
async function readRule(file: string): Promise<Record<string, unknown>> {
  const text = await readTextArgument(file, MAX_RULE_BYTES);
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch (err) {
    throw new CliError(`${file}: not a JSON rule object (${(err as Error).message})`);
  }
}

/** `metal profiles …`, `metal rules …`, `metal bulk …`: the fleet's configuration. */
export function registerFleetCommands(program: Command): void {
  registerProfileCommands(program);
  registerRuleCommands(program);
  registerBulkCommands(program);
}

function registerProfileCommands(program: Command): void {
  const profiles = withExamples(
    program.command('profiles').description('profiles: a NixOS module, hostname pattern and kernel parameters shared by many machines'),
    'metal profiles create web --config web.nix --hostname-pattern "web-{n:03}"',
    'metal machines set ABC123 --profile web',
  );
  const fieldOptions = (cmd: Command) =>
    cmd
      .option('--config <FILE>', 'the NixOS module, from a file (- reads standard input)')
      .option('--description <text>', 'free text')
      .option('--hostname-pattern <pattern>', 'names machines without a hostname: {n}, {n:03}, {tag}, {label.KEY}, e.g. web-{n:03}')
      .option('--kernel-param <param>', 'a kernel parameter for its machines (repeat for more)', (v: string, all: string[] = []) => [...all, v])
      .option('--auto-build', 'build machines as soon as a rule gives them the profile')
      .option('--health-check <command>', 'a command line its images run once up; a rollout counts a failure as unhealthy ("" removes it)')
      .option('--skip-boot-check', 'its machines\' builds skip the boot check in a VM (METAL_BUILD_BOOT_CHECK)')
      .option('--no-skip-boot-check', 'its machines\' builds get the boot check again')
      .option('--json', 'print the API response as JSON');
  const bodyOf = async (opts: { config?: string; description?: string; hostnamePattern?: string; kernelParam?: string[]; autoBuild?: boolean; healthCheck?: string; skipBootCheck?: boolean }) => {
    const body: Record<string, unknown> = {};
    if (opts.config !== undefined) body.nixos_config = await readTextArgument(opts.config, MAX_CONFIG_BYTES);
    if (opts.description !== undefined) body.description = opts.description;
    if (opts.hostnamePattern !== undefined) body.hostname_pattern = opts.hostnamePattern === '' ? null : opts.hostnamePattern;
    if (opts.kernelParam !== undefined) body.kernel_params = opts.kernelParam;
    if (opts.autoBuild !== undefined) body.auto_build = opts.autoBuild;
    if (opts.healthCheck !== undefined) body.health_check = opts.healthCheck === '' ? null : opts.healthCheck;
    if (opts.skipBootCheck !== undefined) body.skip_boot_check = opts.skipBootCheck;
    return body;
  };

  withExamples(profiles.command('ls').description('list profiles with their machines and how many are out of date').option('--json', 'print the API response as JSON'), 'metal profiles ls').action(
    async (opts: { json?: boolean }) => {
      const list = await clientFromEnvironment().get<{ items: Profile[] }>('/api/v1/profiles');
      if (opts.json) return printJson(list);
      if (list.items.length === 0) return void process.stderr.write('no profiles\n');
      printLines(
        formatTable(
          ['NAME', 'MACHINES', 'OUT OF DATE', 'HOSTNAME PATTERN', 'KERNEL PARAMS', 'AUTO BUILD', 'DESCRIPTION'],
          list.items.map((p) => [printable(p.name), String(p.machines ?? 0), String(p.out_of_date ?? 0), printable(p.hostname_pattern) || '-', printable(p.kernel_params.join(' ')) || '-', p.auto_build ? 'yes' : 'no', printable(p.description) || '-']),
        ),
      );
    },
  );

  withExamples(profiles.command('show').description('one profile and its module').argument('<name>').option('--json', 'print the API response as JSON'), 'metal profiles show web').action(
    async (name: string, opts: { json?: boolean }) => {
      const p = await clientFromEnvironment().get<Profile>(`/api/v1/profiles/${segment(name)}`);
      if (opts.json) return printJson(p);
      printLines([
        `name:             ${printable(p.name)}`,
        `description:      ${printable(p.description) || '-'}`,
        `hostname pattern: ${printable(p.hostname_pattern) || '-'}`,
        `kernel params:    ${printable(p.kernel_params.join(' ')) || '-'}`,
        `auto build:       ${p.auto_build ? 'yes' : 'no'}`,
        `health check:     ${printable(p.health_check ?? null) || '-'}`,
        `boot check:       ${p.skip_boot_check ? 'skipped for its machines' : 'as METAL_BUILD_BOOT_CHECK says'}`,
        `machines:         ${p.machines ?? 0} (${p.out_of_date ?? 0} out of date: metal bulk build -l ... or metal machines ls --profile ${printable(p.name)} --out-of-date)`,
        'nixos configuration:',
        ...p.nixos_config.replace(/\n$/, '').split('\n').map((l) => `  ${printable(l)}`),
      ]);
    },
  );

  withExamples(
    fieldOptions(profiles.command('create').description('create a profile').argument('<name>', 'a DNS label, e.g. web')),
    'metal profiles create web --config web.nix --hostname-pattern "web-{n:03}" --kernel-param console=ttyS1,115200',
  ).action(async (name: string, opts: Parameters<typeof bodyOf>[0] & { json?: boolean }) => {
    const p = await clientFromEnvironment().post<Profile>('/api/v1/profiles', { name, ...(await bodyOf(opts)) });
    if (opts.json) return printJson(p);
    process.stdout.write(`profile ${printable(p.name)} created\n`);
  });

  withExamples(
    fieldOptions(profiles.command('edit').description('change a profile; its machines become out of date at once').argument('<name>')).option('--no-auto-build', 'stop building machines a rule gives it'),
    'metal profiles edit web --config web.nix',
    'metal profiles edit web --hostname-pattern ""',
  ).action(async (name: string, opts: Parameters<typeof bodyOf>[0] & { json?: boolean }) => {
    const body = await bodyOf(opts);
    if (Object.keys(body).length === 0) throw new CliError('nothing to change: give --config, --description, --hostname-pattern, --kernel-param or --[no-]auto-build');
    const p = await clientFromEnvironment().put<Profile>(`/api/v1/profiles/${segment(name)}`, body);
    if (opts.json) return printJson(p);
    process.stdout.write(`profile ${printable(p.name)} changed; ${p.out_of_date ?? 0} of its ${p.machines ?? 0} machines are out of date\n`);
  });

  withExamples(profiles.command('rm').description('delete a profile no machine or rule uses').argument('<name>'), 'metal profiles rm web').action(async (name: string) => {
    await clientFromEnvironment().delete(`/api/v1/profiles/${segment(name)}`);
    process.stdout.write(`profile ${printable(name)} deleted\n`);
  });
}

function registerRuleCommands(program: Command): void {
  const rules = withExamples(
    program.command('rules').description('rules: what a machine gets at its first enrollment (profile, labels, hostname, a build)'),
    'metal rules create dell-web --match manufacturer=Dell* --profile web --label role=web --build',
    'metal rules preview dell-web.json',
  );

  withExamples(rules.command('ls').description('rules in the order they are tried').option('--json', 'print the API response as JSON'), 'metal rules ls').action(async (opts: { json?: boolean }) => {
    const list = await clientFromEnvironment().get<{ items: Rule[] }>('/api/v1/rules');
    if (opts.json) return printJson(list);
    if (list.items.length === 0) return void process.stderr.write('no rules\n');
    printLines(
      formatTable(
        ['ID', 'NAME', 'PRIORITY', 'ENABLED', 'MATCH', 'SET', 'BUILD'],
        list.items.map((r) => [String(r.id), printable(r.name), String(r.priority), r.enabled ? 'yes' : 'no', printable(describeRuleMatch(r.match)), printable(describeRuleSet(r.set)), r.build ? 'yes' : 'no']),
      ),
    );
  });

  const ruleOptions = (cmd: Command) =>
    cmd
      .option('--file <FILE>', 'the whole rule as JSON ({name, priority, match, set, build, enabled}); - reads standard input')
      .option('--priority <n>', 'lower is tried first (default 100)', (v) => Number(v))
      .option('--match <key=value>', 'a condition: manufacturer, model, service_tag, switch, switch_port (globs), mac (prefix), gpu (true|false), labels (selector), or cpu_threads, memory_bytes, disk_count, disk_bytes as MIN..MAX (repeat)', (v: string, all: string[] = []) => [...all, v])
      .option('--profile <name>', 'give matching machines this profile')
      .option('--label <key=value>', 'give matching machines this label (repeat)', (v: string, all: string[] = []) => [...all, v])
      .option('--hostname-pattern <pattern>', 'name matching machines, e.g. web-{n:03}')
      .option('--build', 'request a build once applied')
      .option('--disabled', 'create it switched off');
  const ruleBody = async (name: string | undefined, opts: { file?: string; priority?: number; match?: string[]; profile?: string; label?: string[]; hostnamePattern?: string; build?: boolean; disabled?: boolean }) => {
    const body: Record<string, unknown> = opts.file ? await readRule(opts.file) : {};
    if (name !== undefined) body.name = name;
    if (opts.priority !== undefined) body.priority = opts.priority;
    if (opts.match) body.match = { ...((body.match as object) ?? {}), ...Object.fromEntries(opts.match.map(matchCondition)) };
    const set: Record<string, unknown> = { ...((body.set as object) ?? {}) };
    if (opts.profile) set.profile = opts.profile;
    if (opts.hostnamePattern) set.hostname_pattern = opts.hostnamePattern;
    if (opts.label) set.labels = Object.fromEntries(opts.label.map((l) => keyValue(l, '--label')));
    if (Object.keys(set).length > 0) body.set = set;
    if (opts.build) body.build = true;
    if (opts.disabled) body.enabled = false;
    return body;
  };

  withExamples(
    ruleOptions(rules.command('create').description('create a rule').argument('<name>', 'a DNS label')).option('--json', 'print the API response as JSON'),
    'metal rules create dell-web --priority 10 --match manufacturer="Dell*" --match cpu_threads=32.. --profile web --label role=web --build',
    'metal rules create gpu --match gpu=true --hostname-pattern "gpu-{tag}" --label role=gpu',
    'metal rules create rack-r12 --match "switch=leaf-r12-*" --label rack=r12     # cabled to a rack\'s switches (LLDP)',
  ).action(async (name: string, opts: Parameters<typeof ruleBody>[1] & { json?: boolean }) => {
    const rule = await clientFromEnvironment().post<Rule>('/api/v1/rules', await ruleBody(name, opts));
    if (opts.json) return printJson(rule);
    process.stdout.write(`rule ${printable(rule.name)} created (id ${rule.id}, priority ${rule.priority})\n`);
  });

  withExamples(
    ruleOptions(rules.command('preview').description('which machines a rule would match today and what it would set (changes nothing)').argument('[name]', 'an existing rule, or none with --file/--match')).option('--json', 'print the API response as JSON'),
    'metal rules preview dell-web',
    'metal rules preview --match manufacturer="Dell*" --profile web',
  ).action(async (name: string | undefined, opts: Parameters<typeof ruleBody>[1] & { json?: boolean }) => {
    const client = clientFromEnvironment();
    let body: Record<string, unknown>;
    if (name !== undefined && !opts.file && !opts.match && !opts.profile && !opts.label && !opts.hostnamePattern) {
      const { id: _id, created_at: _c, updated_at: _u, ...rule } = await client.get<Rule & Record<string, unknown>>(`/api/v1/rules/${segment(name)}`);
      body = rule;
    } else {
      body = await ruleBody(name, opts);
    }
    const preview = await client.post<{ matched: number; items: RuleEffect[] }>('/api/v1/rules/preview', body);
    if (opts.json) return printJson(preview);
    if (preview.matched === 0) return void process.stderr.write('the rule matches no machine today\n');
    printLines(effectRows(preview.items));
    const shown = preview.items.length < preview.matched ? ` (the first ${preview.items.length} shown)` : '';
    process.stderr.write(`${preview.matched} machines would match${shown}; nothing was changed\n`);
  });

  withExamples(
    rules
      .command('apply')
      .description('apply the rules again to existing machines picked by a selector')
      .requiredOption('-l, --selector <selector>', 'the machines, e.g. role=web ("" for all)')
      .option('--rule <name>', 'only this rule')
      .option('--json', 'print the API response as JSON'),
    'metal rules apply -l rack=r12',
    'metal rules apply -l "" --rule dell-web',
  ).action(async (opts: { selector: string; rule?: string; json?: boolean }) => {
    const selector = opts.selector === '' ? '' : selectorArgument(opts.selector);
    const applied = await clientFromEnvironment().post<{ matched: number; items: RuleEffect[] }>('/api/v1/rules/apply', { selector, ...(opts.rule ? { rule: opts.rule } : {}) });
    if (opts.json) return printJson(applied);
    printLines(effectRows(applied.items));
    process.stderr.write(`${applied.matched} machines changed\n`);
  });

  withExamples(rules.command('rm').description('delete a rule').argument('<rule>', 'name or id'), 'metal rules rm dell-web').action(async (ref: string) => {
    await clientFromEnvironment().delete(`/api/v1/rules/${segment(ref)}`);
    process.stdout.write(`rule ${printable(ref)} deleted\n`);
  });
}

function registerBulkCommands(program: Command): void {
  const bulk = withExamples(
    program.command('bulk').description('one change to many machines picked by a label selector, a profile or being out of date'),
    'metal bulk build -l role=web',
    'metal bulk set -l rack=r12 --profile web --dry-run',
  );
  const run = async (body: Record<string, unknown>, opts: { json?: boolean; dryRun?: boolean }) => {
    const answer = await clientFromEnvironment().post<BulkAnswer>('/api/v1/machines/bulk', { ...body, ...(opts.dryRun ? { dry_run: true } : {}) });
    if (opts.json) return printJson(answer);
    printLines(
      formatTable(
        ['SERVICE TAG', 'RESULT', 'DETAIL'],
        answer.results.map((r) => [
          printable(r.service_tag),
          r.ok ? (answer.dry_run ? 'would' : 'ok') : 'skipped',
          r.error ? printable(r.error.message) : [r.changes?.length ? `changed ${r.changes.join(',')}` : '', r.hostname ? `hostname ${printable(r.hostname)}` : '', r.build_id ? `build ${r.build_id}` : ''].filter(Boolean).join('; ') || '-',
        ]),
      ),
    );
    const failed = answer.results.filter((r) => !r.ok).length;
    process.stderr.write(`${answer.matched} machines matched${answer.dry_run ? ' (dry run: nothing was changed)' : ''}${failed ? `; ${failed} skipped` : ''}\n`);
  };
  const common = (cmd: Command) =>
    cmd
      .option('-l, --selector <selector>', 'the machines, e.g. role=web,rack=r12')
      .option('--in-profile <name>', 'only machines with this profile')
      .option('--out-of-date', 'only machines out of date (built from another configuration than they have now)')
      .option('--dry-run', 'say what would happen; change nothing')
      .option('--json', 'print the API response as JSON');
  /** The machines a bulk command acts on, as the API takes them; at least one of -l, --in-profile, --out-of-date. */
  const selection = (opts: Selection): Record<string, unknown> => {
    if (opts.selector === undefined && opts.inProfile === undefined && !opts.outOfDate) throw new CliError('which machines? give -l SELECTOR, --in-profile NAME or --out-of-date');
    return {
      ...(opts.selector !== undefined ? { selector: selectorArgument(opts.selector) } : {}),
      ...(opts.inProfile !== undefined ? { in_profile: opts.inProfile } : {}),
      ...(opts.outOfDate ? { out_of_date: true } : {}),
    };
  };
  const described = (opts: Selection) =>
    [opts.selector !== undefined ? selectorArgument(opts.selector) : '', opts.inProfile !== undefined ? `profile ${opts.inProfile}` : '', opts.outOfDate ? 'out of date' : ''].filter(Boolean).join(', ');

  withExamples(
    common(bulk.command('set').description('give the machines a profile, labels (merged) or a hostname pattern (for those without a hostname); all or nothing'))
      .option('--profile <name>', 'a profile')
      .option('--no-profile', 'remove their profile')
      .option('--label <key=value>', 'a label to set (repeat)', (v: string, all: string[] = []) => [...all, v])
      .option('--hostname-pattern <pattern>', 'names machines without a hostname, e.g. web-{n:03}'),
    'metal bulk set -l rack=r12 --profile web',
    'metal bulk set -l role=web --label env=prod --dry-run',
  ).action(async (opts: Selection & { profile?: string | false; label?: string[]; hostnamePattern?: string; dryRun?: boolean; json?: boolean }) => {
    const body: Record<string, unknown> = { action: 'set', ...selection(opts) };
    const picked = Object.keys(body).length;
    if (opts.profile !== undefined) body.profile = opts.profile === false ? null : opts.profile;
    if (opts.label) body.labels = Object.fromEntries(opts.label.map((l) => keyValue(l, '--label')));
    if (opts.hostnamePattern) body.hostname_pattern = opts.hostnamePattern;
    if (Object.keys(body).length === picked) throw new CliError('nothing to set: give --profile, --no-profile, --label or --hostname-pattern');
    await run(body, opts);
  });

  withExamples(
    common(bulk.command('build').description('request a build of each machine (those already building are skipped)')),
    'metal bulk build -l role=web',
    'metal bulk build --in-profile web --out-of-date     # what an edit of profile web touched',
  ).action(async (opts: Selection & { dryRun?: boolean; json?: boolean }) => run({ action: 'build', ...selection(opts) }, opts));

  withExamples(common(bulk.command('delete').description('remove the machines and their images')).option('-y, --yes', 'do not ask for confirmation'), 'metal bulk delete -l env=retired --dry-run').action(
    async (opts: Selection & { dryRun?: boolean; json?: boolean; yes?: boolean }) => {
      const body = { action: 'delete', ...selection(opts) };
      const what = described(opts);
      if (!opts.dryRun && !opts.yes) {
        if (!process.stdin.isTTY) throw new CliError(`not deleting machines matching ${printable(what)} without --yes (standard input is not a terminal to ask on)`);
        if (!(await confirm(`remove every machine matching ${printable(what)} and its images?`))) throw new CliError('not removed');
      }
      await run(body, opts);
    },
  );
}

/** The options of a bulk command that pick its machines. */
interface Selection {
  selector?: string;
  inProfile?: string;
  outOfDate?: boolean;
}

/** `key=value`, or a CliError naming the option. */
function keyValue(text: string, option: string): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0) throw new CliError(`${option} ${JSON.stringify(text)}: expected key=value`);
  return [text.slice(0, at), text.slice(at + 1)];
}

/** `--match manufacturer=Dell*`, `--match cpu_threads=32..64`, `--match gpu=true`. */
function matchCondition(text: string): [string, unknown] {
  const [key, value] = keyValue(text, '--match');
  if (['cpu_threads', 'memory_bytes', 'disk_count', 'disk_bytes'].includes(key)) {
    const m = /^(\d*)\.\.(\d*)$/.exec(value);
    if (!m || (m[1] === '' && m[2] === '')) throw new CliError(`--match ${key}: expected MIN..MAX, MIN.. or ..MAX, e.g. 32..64`);
    return [key, { ...(m[1] ? { min: Number(m[1]) } : {}), ...(m[2] ? { max: Number(m[2]) } : {}) }];
  }
  if (key === 'gpu') {
    if (value !== 'true' && value !== 'false') throw new CliError('--match gpu: expected true or false');
    return [key, value === 'true'];
  }
  return [key, value];
}
