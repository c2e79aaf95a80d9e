import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pointMachineAt, publishBuildImage } from '../../src/images/image-publisher.ts';
import type { AppContext } from '../../src/server/context.ts';

/**
 * Runs a requested build to success the way the builder does, without nix-build: claims it, publishes a
 * small real image (files under builds/<id>), points machines/<tag> at it unless the build is held, and
 * marks it successful. For tests of what happens to published images (rollback, retention, rollouts).
 */
export async function publishPendingBuild(ctx: AppContext, workDir: string): Promise<number> {
  const queue = ctx.builds.queueFor({ kind: 'builder', name: 'test-publisher' }, 60_000);
  const row = await queue.claimNext();
  if (!row) throw new Error('publishPendingBuild: no pending build');
  const result = join(workDir, `result-${row.id}-${randomBytes(4).toString('hex')}`);
  mkdirSync(result, { recursive: true });
  writeFileSync(join(result, 'bzImage'), `kernel of build ${row.id}\n`);
  writeFileSync(join(result, 'initrd'), `initrd of build ${row.id}\n`);
  writeFileSync(join(result, 'boot.json'), JSON.stringify({ init: `/nix/store/${row.id}-nixos-system/init`, kernel_params: ['console=ttyS0'] }));
  await publishBuildImage(ctx.images, { buildId: row.id, resultDir: result });
  if (!row.hold) await pointMachineAt(ctx.images, row.service_tag, row.id);
  if (!(await queue.succeed(row.id, { storePath: `/nix/store/${row.id}-standin`, artifactUrl: `http://boot/images/builds/${row.image_key}/`, note: `build ${row.id} published` }))) {
    throw new Error(`publishPendingBuild: build ${row.id} could not be marked successful`);
  }
  return row.id;
}

/** Requests a build of the machine and publishes it (see publishPendingBuild); returns its id. */
export async function buildAndPublish(ctx: AppContext, tag: string, workDir: string): Promise<number> {
  await ctx.machines.requestBuild(tag, { kind: 'user', name: 'test', role: 'operator' });
  return publishPendingBuild(ctx, workDir);
}
