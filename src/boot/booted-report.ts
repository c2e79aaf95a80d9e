import { createHash, timingSafeEqual } from 'node:crypto';
import { ForbiddenError, InvalidInputError, NotFoundError } from '../core/errors.ts';
import type { Notifier } from '../core/notifier.ts';
import { nowIso, type Actor } from '../core/types.ts';
import { assertServiceTag } from '../core/validation.ts';
import type { Storage } from '../storage/storage.ts';

/** What an image sends when it came up: its build and the per-build token from its kernel line. */
export interface BootedReport {
  build_id: number;
  token: string;
}

/** What the server recorded, as the answer to the image. */
export interface BootedRecord {
  machine_id: number;
  build_id: number;
  booted_at: string;
}

/**
 * Records that a machine booted one of its builds, after checking the build's token in constant
 * time. A wrong token and another machine's build are refused alike, so neither can be probed.
 */
export async function recordBooted(storage: Storage, notifier: Notifier, tag: string, report: BootedReport): Promise<BootedRecord> {
  const serviceTag = assertServiceTag(tag);
  if (!Number.isSafeInteger(report.build_id) || report.build_id < 1) {
    throw new InvalidInputError('build_id must be a positive whole number', { field: 'build_id' });
  }
  const machine = await storage.machines.findByServiceTag(serviceTag);
  if (!machine) throw new NotFoundError(`machine ${serviceTag} not found`);
  const build = await storage.builds.findRowById(report.build_id);
  const expected = build && Number(build.machine_id) === machine.id ? build.boot_token : undefined;
  if (!tokensMatch(expected, report.token)) {
    throw new ForbiddenError(`boot report refused: build ${report.build_id} of ${serviceTag} does not have this token`);
  }
  const actor: Actor = { kind: 'machine', name: serviceTag };
  const bootedAt = nowIso();
  await storage.transaction(async (trx) => {
    await storage.machines.update(machine.id, { booted_build_id: report.build_id, booted_at: bootedAt }, bootedAt, trx);
    await storage.events.record(
      { kind: 'machine.booted', machineId: machine.id, buildId: report.build_id, actor, message: `${serviceTag} booted build ${report.build_id}` },
      trx,
    );
  });
  notifier.emit('machine.updated', machine.id);
  return { machine_id: machine.id, build_id: report.build_id, booted_at: bootedAt };
}

/** Compares digests, so neither the length nor the content of the token leaks through timing. */
function tokensMatch(expected: string | undefined, given: string): boolean {
  const a = createHash('sha256').update(expected ?? '').digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b) && expected !== undefined && expected !== '';
}
