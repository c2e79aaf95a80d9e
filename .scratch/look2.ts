import { chromium } from 'playwright-core';
const api = 'http://127.0.0.1:18080';
const login = await fetch(`${api}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: 'looklook123' }) });
const { token } = (await login.json()) as { token: string };
const h = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
const hostname = process.argv[2] ?? 'web-01';
let r = await fetch(`${api}/api/v1/machines/LOOK01`, { method: 'PUT', headers: h, body: JSON.stringify({ hostname, nixos_config: `{ ... }: { services.openssh.enable = true; # ${Date.now()}\n}` }) });
console.log('put', r.status);
r = await fetch(`${api}/api/v1/machines/LOOK01/build`, { method: 'POST', headers: { authorization: h.authorization } });
const build = (await r.json()) as { id: number };
console.log('build', r.status, build.id);
for (let i = 0; i < 120; i++) {
  const b = (await (await fetch(`${api}/api/v1/builds/${build.id}`, { headers: h })).json()) as { status: string; error: string | null };
  if (b.status === 'success' || b.status === 'failed') { console.log(b.status, b.error); break; }
  await new Promise((res) => setTimeout(res, 1000));
}
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium' });
const page = await browser.newPage({ viewport: { width: 1300, height: 1400 } });
await page.goto(`${api}/login`);
await page.fill('input[name=username]', 'admin');
await page.fill('input[name=password]', 'looklook123');
await page.click('button[type=submit]');
await page.waitForLoadState('networkidle');
await page.goto(`${api}/builds/${build.id}`);
await page.waitForLoadState('networkidle');
await page.screenshot({ path: `/tmp/look-build-${build.id}.png`, fullPage: false });
await browser.close();
