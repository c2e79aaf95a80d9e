import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { freshPostgres, isPostgresAvailable, type TestDatabase } from '../support/databases.ts';
import { findScript, startCliOnTerminal } from '../support/cli-process.ts';
import { METAL_BIN, runMetal, startServerProcess, type ServerProcess } from '../support/server-process.ts';

const ADMIN_PASSWORD = 'backup restore 123';
const TAGS = ['BACKUP1', 'BACKUP2', 'BACKUP3'];

async function enroll(api: string, tag: string, mac: string): Promise<void> {
  const response = await fetch(`${api}/api/v1/enroll`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ service_tag: tag, mac_address: mac, hardware: { manufacturer: 'Dell Inc.', model: 'PowerEdge R740' } }),
    signal: AbortSignal.timeout(10_000),
  });
  assert.equal(response.status, 201, await response.text());
}

/** A session token of the admin, signed in with the password of the installation backed up. */
async function adminToken(api: string): Promise<string> {
  const login = await fetch(`${api}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
    signal: AbortSignal.timeout(10_000),
  });
  assert.equal(login.status, 200, 'the admin signs in with the password of the installation backed up');
  return ((await login.json()) as { token: string }).token;
}

/** The service tags a server lists, signed in as the admin. */
async function listedTags(api: string): Promise<string[]> {
  const token = await adminToken(api);
  const list = await fetch(`${api}/api/v1/machines?limit=100`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  return ((await list.json()) as { items: Array<{ service_tag: string }> }).items.map((m) => m.service_tag).sort();
}

/** `metal_last_backup_timestamp_seconds` as a server's /metrics gives it. */
async function lastBackupOf(api: string): Promise<number> {
  const text = await (await fetch(`${api}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  return Number(/^metal_last_backup_timestamp_seconds (\S+)$/m.exec(text)?.[1]);
}

async function stopServer(server: ServerProcess): Promise<void> {
  server.child.kill('SIGTERM');
  const code = await Promise.race([server.exited, new Promise((resolve) => setTimeout(() => resolve('timeout'), 20_000))]);
  if (code === 'timeout') server.child.kill('SIGKILL');
}

/** `metal backup - | metal restore -` between two environments, without a shell. */
function pipeBackup(fromEnv: Record<string, string>, toEnv: Record<string, string>): Promise<{ backup: number | null; restore: number | null; stdout: string; stderr: string }> {
  const out = spawn(process.execPath, [METAL_BIN, 'backup', '-'], { env: { ...process.env, ...fromEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  const into = spawn(process.execPath, [METAL_BIN, 'restore', '-'], { env: { ...process.env, ...toEnv }, stdio: ['pipe', 'pipe', 'pipe'] });
  out.stdout.pipe(into.stdin);
  let stdout = '';
  let stderr = '';
  into.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  out.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  into.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => {
    out.kill('SIGKILL');
    into.kill('SIGKILL');
  }, 60_000);
  const exit = (child: ChildProcess) => new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return Promise.all([exit(out), exit(into)]).then(([backup, restore]) => {
    clearTimeout(timer);
    return { backup, restore, stdout, stderr };
  });
}

describe('metal backup and metal restore, as commands', () => {
  const root = mkdtempSync(join(tmpdir(), 'metal-backup-'));
  const source = join(root, 'source');
  const file = join(root, 'metal.gz');
  let server: ServerProcess;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    server = await startServerProcess(['serve', '--roles', 'api,boot'], { METAL_DATA_DIR: source, METAL_ADMIN_PASSWORD: ADMIN_PASSWORD });
    for (const [i, tag] of TAGS.entries()) await enroll(server.addresses.api!, tag, `52:54:00:00:be:0${i}`);
  });
  after(async () => {
    await stopServer(server);
    for (const cleanup of cleanups) await cleanup();
    rmSync(root, { recursive: true, force: true });
  });

  test('a backup of a running installation: owner-only, whole, never over another file, and seen in the metrics', async () => {
    const lastBackup = () => lastBackupOf(server.addresses.api!);
    assert.equal(await lastBackup(), 0, 'no backup recorded yet');
    const started = Date.now() / 1000;
    const r = await runMetal(['backup', file], { METAL_DATA_DIR: source });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /written to .*metal\.gz \(.*\): users 1, settings \d+, machines 3, events \d+ \(other tables empty\)/);
    const key = readFileSync(join(source, 'secret.key'), 'utf8');
    assert.match(r.stderr, /its secrets need the secret key sha256:[0-9a-f]{16} /);
    assert.doesNotMatch(r.stderr, new RegExp(key.trim()), 'the key itself is never printed');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const recorded = await lastBackup();
    assert.ok(recorded >= Math.floor(started) && recorded <= Date.now() / 1000, `metal_last_backup_timestamp_seconds ${recorded}`);
    const lines = gunzipSync(readFileSync(file)).toString('utf8').trimEnd().split('\n');
    assert.equal((JSON.parse(lines[0]!) as { format: string }).format, 'metal-backup');
    assert.ok(lines.some((l) => l.includes('"BACKUP3"')));
    const again = await runMetal(['backup', file], { METAL_DATA_DIR: source });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /metal\.gz exists; name another file, or pass --force/);
    const forced = await runMetal(['backup', '--force', file], { METAL_DATA_DIR: source });
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(readdirSync(root).sort(), ['metal.gz', 'source'], 'no partial file is left behind');
  });

  test('into a directory: a new file named by the time, older ones beyond --keep removed, nothing else touched', async () => {
    const dir = join(root, 'daily');
    mkdirSync(dir);
    for (const name of ['metal-20200101T000000Z.gz', 'metal-20200102T000000Z.gz', 'metal-20200103T000000Z.gz', 'notes.txt', 'metal-manual.gz']) writeFileSync(join(dir, name), 'x');
    const r = await runMetal(['backup', dir, '--keep', '2'], { METAL_DATA_DIR: source });
    assert.equal(r.code, 0, r.stderr);
    const names = readdirSync(dir).sort();
    const made = names.filter((n) => /^metal-\d{8}T\d{6}Z\.gz$/.test(n) && !n.startsWith('metal-2020'));
    assert.equal(made.length, 1, names.join(' '));
    assert.deepEqual(names, ['metal-20200103T000000Z.gz', made[0], 'metal-manual.gz', 'notes.txt'].sort());
    assert.match(r.stderr, /removed the older backup .*metal-20200101T000000Z\.gz \(--keep 2\)/);
    for (const bad of [[dir, '--keep', '0'], [join(root, 'one.gz'), '--keep', '3']]) {
      const refused = await runMetal(['backup', ...bad], { METAL_DATA_DIR: source });
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /--keep .*: give a whole number of backups \(1 or more\) to keep, with a directory to write into/);
    }
    assert.equal(existsSync(join(root, 'one.gz')), false);
    rmSync(dir, { recursive: true });
  });

  test('- on a terminal is refused: no gzip bytes on a screen, no restore waiting on a keyboard', { timeout: 60_000 }, async (t) => {
    const script = findScript();
    if (!script) return t.skip('script (util-linux) is not installed');
    const out = await startCliOnTerminal(script, ['backup', '-'], { METAL_DATA_DIR: source }).finished;
    assert.notEqual(out.code, 0);
    assert.match(out.stdout, /standard output is a terminal: send it to a file or a pipe/);
    const into = await startCliOnTerminal(script, ['restore', '-'], { METAL_DATA_DIR: join(root, 'from-terminal') }).finished;
    assert.notEqual(into.code, 0);
    assert.match(into.stdout, /standard input is a terminal: send the backup in from a file or a pipe/);
  });

  test('restored into a new SQLite installation with the same key: the machines and the admin are there', { timeout: 90_000 }, async () => {
    const target = join(root, 'restored');
    const noKey = await runMetal(['restore', file], { METAL_DATA_DIR: target });
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /no secret key: set METAL_SECRET_KEY, or copy secret\.key from the installation/);
    assert.equal(existsSync(join(target, 'metal.db')), false, 'nothing is written without the key');
    const otherKey = await runMetal(['restore', file], { METAL_DATA_DIR: target, METAL_SECRET_KEY: 'ab'.repeat(32) });
    assert.equal(otherKey.code, 1);
    assert.match(otherKey.stderr, /sealed with another secret key/);
    mkdirSync(target, { recursive: true });
    copyFileSync(join(source, 'secret.key'), join(target, 'secret.key'));
    const r = await runMetal(['restore', file], { METAL_DATA_DIR: target });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^restored .*metal\.gz \(taken .* from sqlite\) into sqlite:.*restored\/metal\.db: users 1, settings \d+, machines 3/);
    const twice = await runMetal(['restore', file], { METAL_DATA_DIR: target });
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /the database is not empty \(users: 1 row, .*machines: 3 rows/);
    const restored = await startServerProcess(['serve', '--roles', 'api'], { METAL_DATA_DIR: target });
    try {
      assert.deepEqual(await listedTags(restored.addresses.api!), TAGS);
      const taken = Date.parse((JSON.parse(gunzipSync(readFileSync(file)).toString('utf8').split('\n')[0]!) as { created_at: string }).created_at);
      assert.equal(await lastBackupOf(restored.addresses.api!), taken / 1000, 'the backup restored is the installation\'s last backup');
    } finally {
      await stopServer(restored);
    }
  });

  test('the secret key is lost: --new-secret-key restores with a new one, and names the secrets to set again', { timeout: 90_000 }, async () => {
    const api = server.addresses.api!;
    const token = await adminToken(api);
    const hook = await fetch(`${api}/api/v1/webhooks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ url: 'https://hooks.example.invalid/metal', events: ['build.failed'], secret: 'sixteen chars or more' }),
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(hook.status, 201, await hook.text());
    const withHook = join(root, 'with-webhook.gz');
    const taken = await runMetal(['backup', withHook], { METAL_DATA_DIR: source });
    assert.equal(taken.code, 0, taken.stderr);

    const target = join(root, 'new-key');
    const refused = await runMetal(['restore', withHook], { METAL_DATA_DIR: target });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /if that key is lost, restore with --new-secret-key/);
    const r = await runMetal(['restore', '--new-secret-key', withHook], { METAL_DATA_DIR: target });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ {2}1 webhook\(s\), switched off: 1 https:\/\/hooks\.example\.invalid\/metal {2}\(metal webhooks set ID --secret … --enable\)$/m);
    assert.equal(statSync(join(target, 'secret.key')).mode & 0o777, 0o600, 'a new key was made for the restored installation');
    assert.notEqual(readFileSync(join(target, 'secret.key'), 'utf8'), readFileSync(join(source, 'secret.key'), 'utf8'));
    const restored = await startServerProcess(['serve', '--roles', 'api'], { METAL_DATA_DIR: target });
    try {
      assert.deepEqual(await listedTags(restored.addresses.api!), TAGS);
      const hooks = await fetch(`${restored.addresses.api!}/api/v1/webhooks`, { headers: { authorization: `Bearer ${await adminToken(restored.addresses.api!)}` }, signal: AbortSignal.timeout(10_000) });
      const [restoredHook] = ((await hooks.json()) as { items: Array<{ enabled: boolean; disabled_reason: string | null }> }).items;
      assert.deepEqual([restoredHook?.enabled, restoredHook?.disabled_reason], [false, 'restored from a backup whose secret key was lost: set a new secret and switch it on (metal webhooks set ID --secret … --enable)']);
    } finally {
      await stopServer(restored);
    }
  });

  test('a damaged file is refused and leaves the new database without data', async () => {
    const target = join(root, 'damaged');
    mkdirSync(target, { recursive: true });
    copyFileSync(join(source, 'secret.key'), join(target, 'secret.key'));
    const whole = readFileSync(file);
    const cut = join(root, 'cut.gz');
    writeFileSync(cut, whole.subarray(0, Math.floor(whole.length / 2)));
    const r = await runMetal(['restore', cut], { METAL_DATA_DIR: target });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^metal: the file cannot be read to its end \(unexpected end of file\): it is damaged or cut short$/m);
    const plain = join(root, 'plain.txt');
    writeFileSync(plain, 'not a backup\n');
    const notBackup = await runMetal(['restore', plain], { METAL_DATA_DIR: target });
    assert.equal(notBackup.code, 1);
    assert.match(notBackup.stderr, /this is not a metal backup/);
    // The schema may have been made; no row was written.
    const again = await runMetal(['restore', file], { METAL_DATA_DIR: target });
    assert.equal(again.code, 0, `a database left by a refused restore is still empty: ${again.stderr}`);
    rmSync(cut);
    rmSync(plain);
  });

  test('moved to PostgreSQL through a pipe (backup - | restore -), and served from there', { timeout: 90_000 }, async (t) => {
    if (!(await isPostgresAvailable())) return t.skip('PostgreSQL is not available');
    const database: TestDatabase = freshPostgres();
    cleanups.push(() => database.cleanup());
    const r = await pipeBackup({ METAL_DATA_DIR: source }, { METAL_DATA_DIR: source, METAL_DATABASE_URL: database.url });
    assert.equal(r.backup, 0, r.stderr);
    assert.equal(r.restore, 0, r.stderr);
    assert.match(r.stdout, /^restored standard input \(taken .* from sqlite\) into postgres:.*machines 3/);
    const moved = await startServerProcess(['serve', '--roles', 'api'], { METAL_DATA_DIR: source, METAL_DATABASE_URL: database.url });
    try {
      assert.deepEqual(await listedTags(moved.addresses.api!), TAGS);
      // New machines get ids after the restored ones.
      await enroll(moved.addresses.api!, 'BACKUP4', '52:54:00:00:be:09');
      assert.deepEqual(await listedTags(moved.addresses.api!), [...TAGS, 'BACKUP4']);
    } finally {
      await stopServer(moved);
    }
  });
});
