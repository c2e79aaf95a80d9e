import { desiredHashOf } from './config-hash.ts';
import { MACHINE_PAGE } from './machine-pages.ts';
import type { Storage } from './ports.ts';
import type { Profile } from './profile.ts';
import { nowIso } from './types.ts';

/** The setting that names the nixpkgs pin the machines' desired hashes were computed with. */
export const DESIRED_HASH_PIN = 'desired_hash_nixpkgs';

/** What a refresh found. */
export interface PinRefresh {
  /** The pin the hashes were computed with before (undefined: never recorded). */
  previous: string | undefined;
  /** Machines whose desired hash changed. */
  changed: number;
}

/**
 * Makes every machine's desired hash follow the nixpkgs pin this server builds with (METAL_NIXPKGS).
 * The pin is part of the hash, but a hash is only computed when a machine or its profile changes; a
 * new pin alone would leave every machine looking up to date, and `--out-of-date` would rebuild
 * nothing. Run at the start of a server with the api role: when the recorded pin differs from
 * `nixpkgs` (or none is recorded), every machine's desired hash is recomputed, the pin is recorded,
 * and an event says how many machines changed. Returns undefined when the pin was already current.
 * Safe to run from several servers at once: the hashes are a function of the rows.
 */
export async function followNixpkgsPin(storage: Storage, nixpkgs: string): Promise<PinRefresh | undefined> {
  const previous = await storage.settings.get(DESIRED_HASH_PIN);
  if (previous === nixpkgs) return undefined;
  let changed = 0;
  for (let afterId = 0; ; ) {
    const { items, last } = await storage.transaction(async (tx) => {
      const page = await tx.machines.scan({}, afterId, MACHINE_PAGE);
      const profiles = new Map<string, Profile | null>();
      const hashes: Array<{ id: number; hash: string | null }> = [];
      for (const machine of page) {
        let profile: Profile | null = null;
        if (machine.profile !== null) {
          if (!profiles.has(machine.profile)) profiles.set(machine.profile, (await tx.profiles.findByName(machine.profile)) ?? null);
          profile = profiles.get(machine.profile)!;
        }
        hashes.push({ id: machine.id, hash: desiredHashOf(machine, profile, nixpkgs) });
      }
      return { items: await tx.machines.setDesiredHashes(hashes, nowIso()), last: page.length < MACHINE_PAGE ? undefined : page[page.length - 1]!.id };
    });
    changed += items;
    if (last === undefined) break;
    afterId = last;
  }
  await storage.transaction(async (tx) => {
    await tx.settings.put(DESIRED_HASH_PIN, nixpkgs, nowIso());
    if (previous !== undefined || changed > 0) {
      await tx.events.record({
        kind: 'fleet.nixpkgs_changed',
        actor: { kind: 'system', name: 'system' },
        message: `nixpkgs is now ${nixpkgs || "the builders' <nixpkgs>"} (was ${previous === undefined ? 'not recorded' : previous || "the builders' <nixpkgs>"}): ${changed} machine${changed === 1 ? '' : 's'} now out of date or changed`,
        data: { nixpkgs, previous: previous ?? null, machines: changed },
      });
    }
  });
  return { previous, changed };
}
