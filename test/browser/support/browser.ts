import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

/** Debian's Chromium, which CI installs. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Whether the browser tests can run. Outside CI a missing Chromium skips them with a loud warning;
 * in CI (`CI=true`) it is an error.
 */
export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.CI === 'true') throw new Error(`browser tests: ${CHROMIUM} is required in CI (apt-get install chromium)`);
  console.warn(`\n*** SKIPPING browser tests: ${CHROMIUM} not found (apt-get install chromium) ***\n`);
  return false;
}

/** A headless Chromium with a fresh profile that talks to loopback only; close() removes the profile. */
export async function launchBrowser(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'metal-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1440, height: 900 },
    timeout: 60_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
