import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { OFFLINE_NIX_CONFIG } from '../../src/builder/nix-build.ts';
import { loadConfig } from '../../src/config/config.ts';
import { startServer, type RunningServer } from '../../src/server/serve.ts';
import { createLogger } from '../../src/core/logger.ts';
import { enrollmentPayload } from '../support/context.ts';
import { chromiumAvailable, launchBrowser } from './support/browser.ts';

// Screenshots go to test-results/ on every run; METAL_UPDATE_SCREENSHOTS=1 refreshes the README's copies.
const SCREENSHOTS = resolve(process.env.METAL_UPDATE_SCREENSHOTS === '1' ? 'docs/screenshots' : 'test-results/screenshots');
const ADMIN_PASSWORD = 'correct-horse-battery-staple';
const HOSTILE = `<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'"&${'x'.repeat(150)}`;
const LONG_HOSTILE = `${HOSTILE} ${'a-very-long-unbroken-string-'.repeat(60)}`;
// A fresh comment per run, so the Nix store has no cached result and the build really runs.
const CONFIG = `{ pkgs, ... }:\n{\n  # web front end, run ${randomUUID().slice(0, 8)}\n  services.nginx.enable = true;\n  networking.firewall.allowedTCPPorts = [ 80 443 ];\n  environment.systemPackages = [ pkgs.htop ];\n}\n`;

const HARDWARE = '{ ... }:\n{\n  boot.initrd.availableKernelModules = [ "nvme" "ahci" ];\n}\n';

/** A SMBIOS UUID of the tag's own: a UUID belongs to one machine. */
function uuidOf(tag: string): string {
  const h = createHash('sha256').update(tag).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A realistic enrollment with DIMMs, disks, NICs and a GPU, as the agent would send. */
function richPayload(tag: string, vendor: string, model: string, cores: number) {
  return enrollmentPayload(tag, {
    mac_address: `52:54:00:00:${tag.slice(-2).padStart(2, '0')}:01`,
    hardware: {
      manufacturer: vendor,
      model,
      serial: tag,
      uuid: uuidOf(tag),
      bios: { vendor, version: '2.19.1', date: '2024-03-11' },
      cpu: { model: 'Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz', architecture: 'x86_64', sockets: 2, cores, threads: cores * 2 },
      memory: {
        total_bytes: 412316860416,
        dimms: [
          { locator: 'A1', size_bytes: 68719476736, type: 'DDR4', speed_mts: 2933 },
          { locator: 'A2', size_bytes: 68719476736, type: 'DDR4', speed_mts: 2933 },
          { locator: 'B1', size_bytes: 0, type: 'DDR4', speed_mts: null },
        ],
      },
      disks: [
        { name: 'nvme0n1', size_bytes: 1920383410176, model: 'Dell Ent NVMe P5600', serial: 'PHAB1234', rotational: false },
        { name: 'sda', size_bytes: 8001563222016, model: 'ST8000NM000A', serial: 'ZA1B2C3D', rotational: true },
      ],
      nics: [
        { name: 'eno1', mac: `52:54:00:00:${tag.slice(-2).padStart(2, '0')}:01`, driver: 'bnxt_en', speed_mbps: 25000, link: true },
        { name: 'eno2', mac: `52:54:00:00:${tag.slice(-2).padStart(2, '0')}:02`, driver: 'bnxt_en', speed_mbps: null, link: false },
      ],
      gpus: [{ vendor: 'NVIDIA Corporation', model: 'GA100 [A100 PCIe 40GB]', pci_address: '0000:3b:00.0' }],
    },
  });
}

/** Counts the log events a page receives over its EventSource, kept in sessionStorage across reloads. */
const STREAM_PROBE = `(() => {
  const Original = window.EventSource;
  window.EventSource = class extends Original {
    constructor(url, init) {
      super(url, init);
      sessionStorage.setItem('metal-test-streams', String(Number(sessionStorage.getItem('metal-test-streams') || 0) + 1));
      this.addEventListener('log', (e) => sessionStorage.setItem('metal-test-streamed', (sessionStorage.getItem('metal-test-streamed') || '') + e.data));
    }
  };
})()`;

/** Runs a script in the page and returns its (JSON-serialisable) result. */
const run = <T>(page: Page, script: string): Promise<T> => page.evaluate(script) as Promise<T>;

const available = chromiumAvailable();

describe('dashboard in Chromium', { skip: !available, timeout: 300_000 }, () => {
  let server: RunningServer;
  let base: string;
  let dataDir: string;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let context: BrowserContext;
  let page: Page;
  const dialogs: string[] = [];
  const pageErrors: string[] = [];
  const consoleErrors: string[] = [];

  before(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    dataDir = mkdtempSync(join(tmpdir(), 'metal-browser-'));
    // The stand-in entry builds from host tools: offline, without build users or sandbox.
    process.env.NIX_CONFIG ??= OFFLINE_NIX_CONFIG;
    const config = loadConfig({
      METAL_DATA_DIR: dataDir,
      METAL_LISTEN: '127.0.0.1:0',
      METAL_BOOT_LISTEN: '127.0.0.1:0',
      METAL_BOOT_URL: 'http://127.0.0.1:8081',
      METAL_NIX_ENTRY: resolve('src/builder/fixtures/standin-ok.nix'),
      METAL_ADMIN_PASSWORD: ADMIN_PASSWORD,
      METAL_BUILD_UNSANDBOXED: '1',
      METAL_LOG_LEVEL: process.env.METAL_TEST_LOG_LEVEL ?? 'silent',
    });
    server = await startServer(config, createLogger(config.logLevel), ['api', 'builder']);
    base = server.addresses.api!;
    browser = await launchBrowser();
    context = browser.context;
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(30_000);
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(`${m.text()} ${m.location().url}`);
    });
    // Counts log events the page receives over its EventSource; kept across the reload at the end.
    await context.addInitScript({ content: STREAM_PROBE });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const enroll = async (payload: unknown) => {
    const r = await fetch(`${base}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) });
    assert.ok(r.status === 201 || r.status === 200, `enroll: ${r.status} ${await r.text()}`);
  };
  const shot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, name), fullPage: true });
  const logIn = async (username: string, password: string) => {
    await page.goto(`${base}/login`);
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  };

  test('signing in: a wrong password is refused with a message; the right one opens the empty overview', async () => {
    const response = await page.goto(`${base}/machines`);
    assert.match(page.url(), /\/login\?next=%2Fmachines$/);
    assert.match(response?.headers()['content-security-policy'] ?? '', /script-src 'self'/);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill('wrong password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'wrong username or password' }).waitFor();
    await shot('login.png');
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${base}/machines`);
    const cookies = await context.cookies(base);
    const session = cookies.find((c) => c.name === 'metal_session');
    assert.ok(session?.httpOnly, 'the session cookie is HttpOnly');
    assert.equal(session?.sameSite, 'Strict');
    await page.goto(`${base}/`);
    await page.getByRole('heading', { name: 'No machines yet' }).waitFor();
    assert.ok(await page.getByText('metal lab boot').isVisible());
    await shot('overview-empty.png');
  });

  test('enrolled machines appear in the list and on the overview', async () => {
    await enroll(richPayload('7XK2M53', 'Dell Inc.', 'PowerEdge R740', 20));
    const fleet: Array<[string, string, string, number]> = [
      ['CZ2D1E0F01', 'HPE', 'ProLiant DL380 Gen10', 16],
      ['CZ2D1E0F02', 'HPE', 'ProLiant DL380 Gen10', 16],
      ['S4B9K2L03', 'Supermicro', 'SYS-1029U-TRT', 24],
      ['S4B9K2L04', 'Supermicro', 'SYS-1029U-TRT', 24],
      ['S4B9K2L05', 'Supermicro', 'SYS-2029BT-HNR', 28],
      ['8YK2M5306', 'Dell Inc.', 'PowerEdge R650', 28],
      ['8YK2M5307', 'Dell Inc.', 'PowerEdge R650', 28],
    ];
    for (const [tag, vendor, model, cores] of fleet) await enroll(richPayload(tag, vendor, model, cores));
    const actor = { kind: 'user' as const, name: 'admin' };
    for (const [i, [tag]] of fleet.entries()) {
      if (i % 2 === 0) await server.ctx.machines.update(tag, { hostname: `node-${i + 10}`, nixos_config: CONFIG }, actor);
    }
    await page.goto(`${base}/machines`);
    const row = page.getByRole('row').filter({ hasText: '7XK2M53' });
    await row.waitFor();
    assert.match((await row.textContent()) ?? '', /PowerEdge R740/);
    assert.match((await row.textContent()) ?? '', /384 GiB/);
    assert.match((await row.textContent()) ?? '', /just now/);
    await shot('machines.png');
    // Live: a change made elsewhere shows up in the open table without a reload.
    await run(page, 'window.metalTestMarker = 1');
    await server.ctx.machines.update('CZ2D1E0F02', { hostname: 'live-update-1' }, actor);
    await page.getByRole('link', { name: 'live-update-1' }).waitFor({ timeout: 20_000 });
    assert.equal(await run<number | null>(page, 'window.metalTestMarker ?? null'), 1, 'the page was not reloaded');
    await page.getByLabel('Search').fill('supermicro');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByText('1–3 of 3').waitFor();
    await page.goto(`${base}/`);
    await page.getByRole('heading', { name: 'By model' }).waitFor();
    assert.equal(await page.getByText('No machines yet').count(), 0);
  });

  test('a rule is previewed live as it is typed, before it has a name, and creating it still asks for one', async () => {
    await page.goto(`${base}/rules`);
    // Typed key by key, as a person does, without leaving the field: the preview follows the form.
    await page.getByLabel('Manufacturer').pressSequentially('Dell*', { delay: 30 });
    await page.getByLabel('Labels (key=value, comma-separated)').pressSequentially('role=web', { delay: 30 });
    await page.locator('#rule-preview [data-matched="3"]').waitFor({ timeout: 20_000 });
    const preview = (await page.locator('#rule-preview').textContent()) ?? '';
    for (const tag of ['7XK2M53', '8YK2M5306', '8YK2M5307']) assert.ok(preview.includes(tag), `${tag} in the preview`);
    assert.ok(!preview.includes('CZ2D1E0F01'), 'an HPE machine is not matched');
    await shot('rule-preview.png');
    await page.getByRole('button', { name: 'Create rule' }).click();
    assert.equal(await run<boolean>(page, "document.getElementById('rule-name').validity.valueMissing"), true, 'the browser asks for the name');
    assert.equal(new URL(page.url()).pathname, '/rules');
    assert.deepEqual(await server.ctx.rules.list(), [], 'nothing was created');
  });

  test('the rule preview keeps up with a form filled faster than it answers: a change made while a preview is on its way is not lost', async () => {
    await page.goto(`${base}/rules`);
    // Every preview takes a second here, so the second field is filled while the first preview is on its way.
    let previews = 0;
    await page.route('**/rules/preview', async (route) => {
      previews += 1;
      await new Promise((r) => setTimeout(r, 1_000));
      await route.continue();
    });
    try {
      await page.getByLabel('Manufacturer').fill('Dell*');
      await page.locator('#rule-preview.htmx-request').waitFor({ timeout: 10_000 });
      await page.getByLabel('Labels (key=value, comma-separated)').fill('role=web');
      // The match alone already picks 3 machines (each would change nothing); the labels typed while the
      // first preview was on its way show once the second answers.
      await page.locator('#rule-preview td', { hasText: 'labels' }).first().waitFor({ timeout: 20_000 });
      assert.equal(await page.locator('#rule-preview [data-matched="3"]').count(), 1);
      assert.equal(previews, 2, 'the change made during the first preview was asked about once it answered');
    } finally {
      await page.unroute('**/rules/preview');
    }
  });

  test('edit the hostname and configuration, build, watch the log stream, see the machine turn ready', async () => {
    await page.goto(`${base}/machines`);
    await page.getByRole('link', { name: '7XK2M53' }).click();
    await page.waitForURL(`${base}/machines/7XK2M53`);
    await page.getByLabel('Hostname').fill('web-01');
    await page.getByLabel('Description').fill('Rack B4, unit 12. Front-end pool.');
    await page.getByLabel('NixOS configuration').fill(CONFIG);
    // The editor draws line numbers and highlighted Nix over the textarea.
    assert.equal(await page.locator('[data-editor]:has(#nixos_config) .editor-gutter').textContent(), Array.from({ length: CONFIG.split('\n').length }, (_, i) => i + 1).join('\n'));
    assert.ok((await page.locator('.editor-highlight .tok-comment').count()) >= 1);
    assert.ok((await page.locator('.editor-highlight .tok-builtin').filter({ hasText: 'true' }).count()) >= 1);
    // A second file, from the empty slot: its own editor, saved with the entry.
    await page.getByText('Add a file…').click();
    await page.getByLabel('File name').fill('hardware.nix');
    await page.locator('#file_text_1').fill(HARDWARE);
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved.').waitFor();
    assert.equal(await page.locator('#file_name_1').inputValue(), 'hardware.nix');
    assert.equal(await page.locator('.file-tabs a').count(), 2);
    assert.equal(await page.locator('.title-row .badge').textContent(), 'configured');
    const saved = await server.ctx.machines.get('7XK2M53');
    assert.equal(saved.hostname, 'web-01');
    assert.equal(saved.nixos_config, CONFIG);
    assert.deepEqual(saved.nixos_files, { 'configuration.nix': CONFIG, 'hardware.nix': HARDWARE });
    await page.getByRole('button', { name: 'Build image' }).click();
    await page.waitForURL(/\/builds\/\d+(\?.*)?$/);
    // The log arrives while the build runs; when it ends the page shows the published files.
    await page.getByRole('heading', { name: 'Published files' }).waitFor({ timeout: 120_000 });
    assert.equal(await page.locator('#build-status .badge').textContent(), 'success');
    const log = (await page.locator('#build-log').textContent()) ?? '';
    assert.match(log, /stand-in: building image for web-01 \(7XK2M53\)/);
    const streams = Number(await run<string | null>(page, "sessionStorage.getItem('metal-test-streams')"));
    if (streams > 0) {
      const streamed = (await run<string | null>(page, "sessionStorage.getItem('metal-test-streamed')")) ?? '';
      assert.ok(log.includes(streamed.trim().split('\n')[0] ?? '\u0000'), 'the streamed text is part of the final log');
    }
    const files = page.locator('#files ~ .table-scroll tbody tr, section:has(#files) tbody tr');
    assert.ok((await files.count()) >= 2, 'bzImage and initrd are listed');
    assert.match((await page.getByRole('link', { name: 'bzImage' }).getAttribute('href')) ?? '', /^http:\/\/127\.0\.0\.1:8081\/images\/builds\/[A-Za-z0-9_-]{16,}\/bzImage$/);
    await shot('build.png');
    await page.getByRole('link', { name: 'web-01' }).first().click();
    await page.locator('#machine-live .badge[data-status="ready"]').waitFor({ timeout: 30_000 });
    await page.locator('#machine-live').getByText(/build #\d+/).first().waitFor();
    await shot('machine.png');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot('machine-dark.png');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.goto(`${base}/`);
    await page.getByRole('heading', { name: 'Recent builds' }).waitFor();
    await shot('overview.png');
  });

  test('hostile strings from enrollment are shown as text and never run', async () => {
    await enroll(
      enrollmentPayload('XSS-0001', {
        hardware: { manufacturer: HOSTILE, model: HOSTILE, cpu: { model: HOSTILE, cores: 2 }, disks: [{ name: HOSTILE, model: HOSTILE, size_bytes: 1 }], nics: [{ name: HOSTILE, driver: HOSTILE }], extra: LONG_HOSTILE },
      }),
    );
    await server.ctx.machines.update('XSS-0001', { description: LONG_HOSTILE }, { kind: 'user', name: 'admin' });
    for (const url of ['/', '/machines?search=XSS', '/machines/XSS-0001']) {
      const response = await page.goto(`${base}${url}`);
      assert.match(response?.headers()['content-security-policy'] ?? '', /default-src 'self'/, url);
      await page.getByText('window.pwned=1', { exact: false }).filter({ visible: true }).first().waitFor();
      assert.equal(await run<number | null>(page, 'window.pwned ?? null'), null, url);
      assert.equal(await page.locator('img[src="x"]').count(), 0, url);
      assert.equal(await page.locator('main script').count(), 0, url);
    }
    assert.equal(await page.locator('#description').inputValue(), LONG_HOSTILE);
    await shot('machine-hostile.png');
    assert.deepEqual(dialogs, []);
  });

  test('admin pages: add a viewer, create an API token that is shown once', async () => {
    await page.goto(`${base}/admin/users`);
    await page.getByLabel('Username').fill('vera');
    await page.getByLabel('Role').selectOption('viewer');
    await page.getByLabel('Password (at least 8 characters)').fill('viewer-password-1');
    await page.getByRole('button', { name: 'Add user' }).click();
    await page.getByRole('cell', { name: 'vera', exact: true }).waitFor();
    await shot('admin-users.png');
    await page.goto(`${base}/admin/tokens`);
    await page.getByLabel('Name').fill('ci-deploy');
    await page.getByLabel('Role').selectOption('operator');
    await page.getByRole('button', { name: 'Create token' }).click();
    const token = await page.getByLabel('Token', { exact: true }).inputValue();
    assert.match(token, /^mt_/);
    const me = await fetch(`${base}/api/v1/machines/7XK2M53`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(me.status, 200, 'the shown token works');
    await shot('admin-tokens.png');
    await page.goto(`${base}/admin/tokens`);
    assert.equal(await page.getByText(token).count(), 0, 'the token is not shown again');
    await page.getByRole('button', { name: 'Revoke token ci-deploy' }).click();
    await page.getByText('Token revoked.').waitFor();
    const revoked = await fetch(`${base}/api/v1/machines/7XK2M53`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(revoked.status, 401, 'a revoked token is refused');
  });

  test('fits a laptop screen without sideways scrolling, and the keyboard reaches the content first', async () => {
    for (const width of [1280, 1024]) {
      await page.setViewportSize({ width, height: 800 });
      for (const url of ['/', '/machines', '/machines/7XK2M53', '/builds/1', '/admin/users']) {
        await page.goto(`${base}${url}`);
        const overflow = await run<number>(page, 'document.documentElement.scrollWidth - document.documentElement.clientWidth');
        assert.ok(overflow <= 0, `${url} at ${width}px overflows by ${overflow}px`);
      }
    }
    // On a phone the machine table scrolls sideways inside its box; rows stay one line high.
    await page.setViewportSize({ width: 390, height: 844 });
    for (const url of ['/', '/machines']) {
      await page.goto(`${base}${url}`);
      const overflow = await run<number>(page, 'document.documentElement.scrollWidth - document.documentElement.clientWidth');
      assert.ok(overflow <= 0, `${url} at 390px overflows by ${overflow}px`);
    }
    const rowHeight = await run<number>(page, 'document.querySelector("table.machines tbody tr").getBoundingClientRect().height');
    assert.ok(rowHeight < 60, `a machine row at 390px is ${rowHeight}px high`);
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(`${base}/machines/7XK2M53`);
    await page.keyboard.press('Tab');
    assert.equal(await run<string>(page, 'document.activeElement.textContent'), 'Skip to content');
    await page.keyboard.press('Enter');
    assert.equal(await run<string>(page, 'document.activeElement.id'), 'main');
  });

  test('a form posted without its CSRF token is refused and changes nothing', async () => {
    await page.goto(`${base}/machines/7XK2M53`);
    const result = await run<{ status: number; text: string }>(
      page,
      `fetch('/machines/7XK2M53', { method: 'POST', body: new URLSearchParams({ hostname: 'forged', nixos_config: '{ }' }) })
        .then(async (r) => ({ status: r.status, text: await r.text() }))`,
    );
    assert.equal(result.status, 403);
    assert.match(result.text, /CSRF/);
    assert.equal((await server.ctx.machines.get('7XK2M53')).hostname, 'web-01');
  });

  test('a viewer sees no buttons that would be refused, and a forged post is refused', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByText('You are signed out.').waitFor();
    await logIn('vera', 'viewer-password-1');
    await page.waitForURL(`${base}/`);
    assert.equal(await page.getByRole('link', { name: 'Users' }).count(), 0);
    await page.goto(`${base}/machines/7XK2M53`);
    for (const name of ['Save', 'Build image', 'Delete machine']) assert.equal(await page.getByRole('button', { name }).count(), 0, name);
    assert.equal(await page.getByLabel('Hostname').getAttribute('readonly'), '');
    await shot('machine-viewer.png');
    const result = await run<number>(
      page,
      `fetch('/machines/7XK2M53/build', { method: 'POST', body: new URLSearchParams({ _csrf: document.querySelector('input[name="_csrf"]').value }) })
        .then((r) => r.status)`,
    );
    assert.equal(result, 403);
    const admin = await page.goto(`${base}/admin/users`);
    assert.equal(admin?.status(), 403);
  });

  test('no script errors and no dialogs on any page', () => {
    assert.deepEqual(dialogs, []);
    assert.deepEqual(pageErrors, []);
    // The only console errors allowed are the deliberately refused requests above: the wrong password
    // (401 on /login) and the forged posts (403).
    assert.deepEqual(consoleErrors.filter((e) => !/status of 403/.test(e) && !/status of 401 .*\/login$/.test(e)), []);
  });
});
