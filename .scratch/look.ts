import { chromium } from 'playwright-core';
const api = 'http://127.0.0.1:18080';
const boot = 'http://127.0.0.1:18081';
const e = await fetch(`${boot}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ service_tag: 'LOOK01', mac_address: '52:54:00:12:34:56', hardware: { cpu: { model: 'x', cores: 2 }, memory_bytes: 1073741824, nics: [{ name: 'eth0', mac: '52:54:00:12:34:56' }], disks: [] } }) });
console.log('enroll', e.status, await e.text());
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium' });
const page = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
await page.goto(`${api}/login`);
await page.fill('input[name=username]', 'admin');
await page.fill('input[name=password]', 'looklook123');
await page.click('button[type=submit]');
await page.waitForLoadState('networkidle');
const cookies = await page.context().cookies();
const cookie = cookies.map((c) => `${c.name}=${c.value}`).join('; ');
// Use the API through a token? Simpler: the dashboard's forms. Use an API token via REST login.
const tok = await fetch(`${api}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: 'looklook123' }) });
console.log('login', tok.status, (await tok.text()).slice(0, 200), cookie.length);
await browser.close();
