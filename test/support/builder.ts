import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { isBuildFinished } from '../../src/core/lifecycle.ts';
import type { Build } from '../../src/core/types.ts';
import type { AppContext } from '../../src/server/context.ts';
import { enrollmentPayload } from './context.ts';
import { findExecutable, OFFLINE_NIX_CONFIG } from '../../src/builder/nix-build.ts';

// Tests build offline, on hosts without nix.conf: no binary caches, build users or sandbox. Set here, at
// import, so that every server, builder and CLI process a test starts inherits it; a NIX_CONFIG already
// set by whoever runs the tests is kept.
process.env.NIX_CONFIG ??= OFFLINE_NIX_CONFIG;

/** Stand-in entries for builder tests (see src/builder/fixtures/). */
export const FIXTURES = {
  ok: fileURLToPath(new URL('../../src/builder/fixtures/standin-ok.nix', import.meta.url)),
  slow: fileURLToPath(new URL('../../src/builder/fixtures/standin-slow.nix', import.meta.url)),
  noBootJson: fileURLToPath(new URL('../../src/builder/fixtures/standin-no-boot-json.nix', import.meta.url)),
};

/**
 * Whether nix-build can be run. Missing outside CI: a loud warning and the caller skips; in CI
 * (`CI=true`) a missing nix-build is an error.
 */
export function nixBuildAvailable(): boolean {
  if (findExecutable('nix-build') && findExecutable('nix-instantiate')) return true;
  if (process.env.CI === 'true') throw new Error('nix-build is required in CI (Debian package nix-bin)');
  console.warn('\n*** SKIPPING builder tests that run nix-build: nix-build is not installed (apt-get install nix-bin) ***\n');
  return false;
}

/** A NixOS module that differs on every call, so Nix really builds instead of reusing a result. */
export function uniqueConfig(extra = ''): string {
  return `{ ... }:\n{\n  # ${randomBytes(8).toString('hex')}\n  services.openssh.enable = true;\n${extra}}\n`;
}

const operator = { 'x-test-role': 'operator' };

/** Enrolls a machine and gives it a hostname and a configuration through the API. */
export async function enrollAndConfigure(app: FastifyInstance, tag: string, hostname: string, config: string): Promise<void> {
  const enrolled = await app.inject({ method: 'POST', url: '/api/v1/enroll', payload: enrollmentPayload(tag) });
  if (enrolled.statusCode >= 300) throw new Error(`enroll: ${enrolled.statusCode} ${enrolled.body}`);
  const put = await app.inject({ method: 'PUT', url: `/api/v1/machines/${tag}`, headers: operator, payload: { hostname, nixos_config: config } });
  if (put.statusCode !== 200) throw new Error(`configure: ${put.statusCode} ${put.body}`);
}

/** Requests a build through the API; returns its id. */
export async function requestBuild(app: FastifyInstance, tag: string): Promise<number> {
  const r = await app.inject({ method: 'POST', url: `/api/v1/machines/${tag}/build`, headers: operator });
  if (r.statusCode !== 202) throw new Error(`build: ${r.statusCode} ${r.body}`);
  return r.json<{ id: number }>().id;
}

/**
 * Resolves with the build once `until` holds, re-checking on every `build.updated` and at least
 * every 200 ms (for changes made by other processes); rejects after `timeoutMs`.
 */
export async function waitForBuild(
  ctx: AppContext,
  id: number,
  until: (b: Build) => boolean = (b) => isBuildFinished(b.status),
  timeoutMs = 30_000,
): Promise<Build> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const build = await ctx.storage.builds.findById(id);
    if (build && until(build)) return build;
    if (Date.now() > deadline) throw new Error(`build ${id} did not reach the expected state within ${timeoutMs} ms: ${JSON.stringify(build && { status: build.status, error: build.error })}`);
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        ctx.notifier.off('build.updated', done);
        resolve();
      };
      const timer = setTimeout(done, 200);
      ctx.notifier.on('build.updated', done);
    });
  }
}

/** Processes whose command line mentions `needle` (e.g. a build's work directory). */
export function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(needle)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}
