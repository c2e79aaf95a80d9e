import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BOOT_TOKEN_LENGTH, BootTokenMinter } from '../core/boot-token.ts';
import { createLogger } from '../core/logger.ts';
import type { BootKey, BootTarget, BuildBootFacts } from '../core/ports.ts';
import type { BuildImage, RegistrationImage } from '../images/image-catalog.ts';
import { BootScriptResolver, type ScriptKind } from './boot-script-resolver.ts';

// The boot decision table with its dependencies faked: no database, no files.

const TOKEN = 'tok_abcdefghijklmnopqrstuvwx';
const KEY = 'k7Hq2pX9bR4sT1vW3yZ5aQ';
/** The per-boot token the fake lifecycle mints. */
const BOOT_NONCE = 'boot_nonce_abcdefghijklmnop';
const manifest = { init: '/nix/store/abc-nixos-system/init', kernelParams: ['console=ttyS0'] };

interface World {
  machines: BootTarget[];
  /** Keys besides the service tag by which each machine is found. */
  keys?: Record<number, Partial<Record<BootKey, string>>>;
  builds?: Record<number, BuildBootFacts>;
  images?: Record<number, BuildImage>;
  registration?: RegistrationImage;
}

function resolverFor(world: World): BootScriptResolver {
  const reader = {
    async findMachine(key: BootKey, value: string) {
      return world.machines.find((m) => (key === 'service_tag' ? m.serviceTag === value : world.keys?.[m.id]?.[key] === value));
    },
    async buildFacts(id: number) {
      return world.builds?.[id];
    },
  };
  const catalog = {
    async registration(): Promise<RegistrationImage> {
      return world.registration ?? { ok: true, manifest: { init: '/init', kernelParams: [] } };
    },
    async build(id: number): Promise<BuildImage> {
      return world.images?.[id] ?? { ok: false, reason: 'boot.json is missing' };
    },
  };
  const tokens = {
    bootTokenMinter: () => ({
      mint: () => BOOT_NONCE,
      mintInto: () => assert.fail('these resolvers keep no answers (no table to check them against)'),
    }),
  };
  return new BootScriptResolver(reader, catalog, { bootUrl: 'http://10.0.2.100', enrollToken: undefined, afterEnroll: 'reboot' }, createLogger('silent'), tokens);
}

const ready: World = {
  machines: [{ id: 1, serviceTag: 'WEB01', status: 'ready', imageBuildId: 7, systemUuid: '4c4c4544-0000-1000-8000-000000000001', identityConflict: false }],
  keys: { 1: { mac_address: '52:54:00:00:00:01', system_uuid: '4c4c4544-0000-1000-8000-000000000001' } },
  builds: { 7: { machineId: 1, bootToken: TOKEN, imageKey: KEY } },
  images: { 7: { ok: true, manifest } },
};

const rows: Array<{ rule: string; world: World; tag: string; mac?: string; uuid?: string; kind: ScriptKind; contains?: RegExp }> = [
  { rule: 'an unknown machine gets the registration image', world: { machines: [] }, tag: 'NEW01', kind: 'registration', contains: /images\/registration\/bzImage/ },
  {
    rule: 'an unknown machine waits when the registration image is missing',
    world: { machines: [], registration: { ok: false, missing: ['bzImage'], reason: 'bzImage is missing' } },
    tag: 'NEW01',
    kind: 'registration-missing',
    contains: /sleep 60/,
  },
  { rule: 'a machine with a build running is held briefly', world: { machines: [{ id: 1, serviceTag: 'B1', status: 'building', imageBuildId: null, systemUuid: null, identityConflict: false }] }, tag: 'B1', kind: 'hold-building', contains: /sleep 5/ },
  { rule: 'a known machine without an image is held longer', world: { machines: [{ id: 1, serviceTag: 'E1', status: 'enrolled', imageBuildId: null, systemUuid: null, identityConflict: false }] }, tag: 'E1', kind: 'hold-no-image', contains: /sleep 30/ },
  { rule: 'a machine with a published image boots it with its token', world: ready, tag: 'WEB01', kind: 'image', contains: new RegExp(`images/builds/${KEY}/bzImage .*metal\\.boot_token=${BOOT_NONCE} `) },
  { rule: 'an image with a malformed image key is refused', world: { ...ready, builds: { 7: { machineId: 1, bootToken: TOKEN, imageKey: '7' } } }, tag: 'WEB01', kind: 'image-invalid' },
  { rule: 'a placeholder serial is found by its MAC', world: ready, tag: 'To-Be-Filled-By-O.E.M.', mac: '52-54-00-00-00-01', kind: 'image' },
  { rule: 'a placeholder serial is found by its UUID', world: ready, tag: 'Default-string', uuid: '4C4C4544-0000-1000-8000-000000000001', kind: 'image' },
  { rule: 'a placeholder serial is found by a MAC and UUID that agree', world: ready, tag: 'Default-string', mac: '52:54:00:00:00:01', uuid: '4c4c4544-0000-1000-8000-000000000001', kind: 'image' },
  {
    rule: 'a MAC and a UUID of two different machines find neither',
    world: {
      ...ready,
      machines: [...ready.machines, { id: 2, serviceTag: 'OTHER2', status: 'ready', imageBuildId: null, systemUuid: '4c4c4544-0000-1000-8000-000000000002', identityConflict: false }],
      keys: { ...ready.keys, 2: { system_uuid: '4c4c4544-0000-1000-8000-000000000002' } },
    },
    tag: 'Default-string',
    mac: '52:54:00:00:00:01',
    uuid: '4c4c4544-0000-1000-8000-000000000002',
    kind: 'registration-ambiguous',
  },
  { rule: 'a MAC whose machine owns another UUID (or none) is not a match', world: ready, tag: 'Default-string', mac: '52:54:00:00:00:01', uuid: '4c4c4544-0000-1000-8000-0000000000ff', kind: 'registration-ambiguous' },
  {
    rule: 'a machine with an identity conflict is never found by MAC or UUID',
    world: { ...ready, machines: [{ ...ready.machines[0]!, identityConflict: true }] },
    tag: 'Default-string',
    mac: '52:54:00:00:00:01',
    kind: 'registration-ambiguous',
    contains: /images\/registration\/bzImage/,
  },
  { rule: 'a machine with an identity conflict still boots by its own tag', world: { ...ready, machines: [{ ...ready.machines[0]!, identityConflict: true }] }, tag: 'WEB01', kind: 'image' },
  { rule: 'a real serial no machine has is not matched to another machine by MAC', world: ready, tag: 'NEWSERVER9', mac: '52:54:00:00:00:01', kind: 'registration' },
  { rule: 'a firmware placeholder UUID never finds a machine', world: ready, tag: '0', uuid: '03000200-0400-0500-0006-000700080009', kind: 'registration' },
  { rule: 'a tag that is not a service tag is never looked up', world: ready, tag: 'WEB01;reboot', kind: 'registration' },
  {
    rule: 'an image whose build belongs to another machine is refused',
    world: { ...ready, builds: { 7: { machineId: 2, bootToken: TOKEN, imageKey: KEY } } },
    tag: 'WEB01',
    kind: 'image-invalid',
  },
  { rule: 'an image with a malformed token is refused', world: { ...ready, builds: { 7: { machineId: 1, bootToken: 'a b', imageKey: KEY } } }, tag: 'WEB01', kind: 'image-invalid' },
  { rule: 'an image whose files are broken is refused', world: { ...ready, images: { 7: { ok: false, reason: 'initrd is missing' } } }, tag: 'WEB01', kind: 'image-invalid', contains: /initrd is missing/ },
];

describe('boot decision table', () => {
  for (const row of rows) {
    test(row.rule, async () => {
      const resolved = await resolverFor(row.world).resolve(row.tag, row.mac, row.uuid);
      assert.equal(resolved.kind, row.kind);
      assert.ok(resolved.script.startsWith('#!ipxe\n'));
      if (row.contains) assert.match(resolved.script, row.contains);
    });
  }
});

describe('answers kept in memory (resolveNow)', () => {
  /** The ready world behind a table-like reader: rows are replaced on change, as BootTable does. */
  function memoWorld() {
    let row: BootTarget = { ...ready.machines[0]! };
    const reader = {
      async findMachine(key: BootKey, value: string) {
        return key === 'service_tag' ? (value === row.serviceTag ? row : undefined) : ready.keys?.[row.id]?.[key] === value ? row : undefined;
      },
      async buildFacts(id: number) {
        return ready.builds?.[id];
      },
      peekTag: (tag: string) => (tag === row.serviceTag ? row : undefined),
      isUpToDate: () => true,
      onSuperseded: (listener: (r: Readonly<BootTarget>) => void) => void superseded.push(listener),
    };
    const superseded: Array<(r: Readonly<BootTarget>) => void> = [];
    const catalog = {
      registration: async (): Promise<RegistrationImage> => ({ ok: true, manifest: { init: '/init', kernelParams: [] } }),
      build: async (id: number): Promise<BuildImage> => ready.images?.[id] ?? { ok: false, reason: 'boot.json is missing' },
    };
    const tokens = { bootTokenMinter: (id: number, secret: string) => new BootTokenMinter(id, secret) };
    const resolver = new BootScriptResolver(reader, catalog, { bootUrl: 'http://10.0.2.100', enrollToken: undefined, afterEnroll: 'reboot' }, createLogger('silent'), tokens);
    return {
      resolver,
      replaceRow: (change: Partial<BootTarget>) => {
        const old = row;
        row = { ...row, ...change };
        for (const listener of superseded) listener(old);
      },
    };
  }

  test('the same request is answered from memory with a fresh token each time; another query or a changed row is not', async () => {
    const w = memoWorld();
    const mac = '52:54:00:00:00:01';
    assert.equal(w.resolver.resolveNow('WEB01', mac, undefined), undefined, 'nothing kept before the first answer');
    const first = await w.resolver.resolve('WEB01', mac, undefined);
    const again = w.resolver.resolveNow('WEB01', mac, undefined);
    assert.equal(again?.kind, 'image');
    const tokenOf = (script: string) => /metal\.boot_token=(\S+)/.exec(script)?.[1];
    assert.equal(again.script.replace(tokenOf(again.script)!, 'T'), first.script.replace(tokenOf(first.script)!, 'T'));
    assert.notEqual(tokenOf(again.script), tokenOf(first.script), 'a fresh token');
    const minter = new BootTokenMinter(7, TOKEN);
    assert.match(minter.verify(tokenOf(again.script)!, Date.now()) ?? '', /^\d{15}\.[A-Za-z0-9_-]{16}$/, 'the token minted into the kept bytes is genuine');
    const kept = w.resolver.keptAnswer('WEB01', mac, undefined)!;
    assert.equal(kept.body.toString('utf8', kept.token!.at, kept.token!.at + BOOT_TOKEN_LENGTH), '0'.repeat(BOOT_TOKEN_LENGTH), 'the kept bytes themselves are never minted into');
    assert.equal(w.resolver.resolveNow('WEB01', '52:54:00:00:00:02', undefined), undefined, 'another MAC');
    assert.equal(w.resolver.resolveNow('WEB01', undefined, undefined), undefined, 'no MAC');
    assert.equal(w.resolver.resolveNow('WEB01', mac, '4c4c4544-0000-1000-8000-000000000001'), undefined, 'a UUID too');
    w.replaceRow({ status: 'building' });
    assert.equal(w.resolver.resolveNow('WEB01', mac, undefined), undefined, 'the row changed');
    assert.equal((await w.resolver.resolve('WEB01', mac, undefined)).kind, 'hold-building');
    assert.equal(w.resolver.resolveNow('WEB01', mac, undefined)?.kind, 'hold-building');
  });

  test('a repeated query parameter (an array) is never answered from memory', async () => {
    const w = memoWorld();
    const macs = ['52:54:00:00:00:01', '52:54:00:00:00:01'];
    await w.resolver.resolve('WEB01', macs, undefined);
    assert.equal(w.resolver.resolveNow('WEB01', macs, undefined), undefined);
  });
});
