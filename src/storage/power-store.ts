import type { Kysely, Selectable } from 'kysely';
import { DuplicateKeyError, type BmcCredentialSetStore, type PowerStore } from '../core/ports.ts';
import type { BmcCredentialSet, MachinePower, PowerState, StoredBmc } from '../core/types.ts';
import type { BmcCredentialSetsTable, MachinePowerTable, Schema } from './schema.ts';
import { isUniqueViolation } from './unique-violation.ts';

function toMachinePower(row: Selectable<MachinePowerTable>): MachinePower {
  const bmc: StoredBmc | null =
    row.bmc_type === null || row.bmc_address === null
      ? null
      : {
          type: row.bmc_type as StoredBmc['type'],
          address: row.bmc_address,
          username: row.bmc_username,
          password_sealed: row.bmc_password_sealed,
          credential_set_id: row.credential_set_id === null ? null : Number(row.credential_set_id),
          verify_tls: Number(row.verify_tls) === 1,
          tls_fingerprint: row.tls_fingerprint,
          tls_ca_bundle: row.tls_ca_bundle,
          auth: row.redfish_auth === 'basic' ? 'basic' : 'session',
          system_id: row.system_id,
        };
  return {
    machine_id: Number(row.machine_id),
    bmc,
    power_state: row.power_state as PowerState,
    checked_at: row.checked_at,
    reboot_on_publish: Number(row.reboot_on_publish) === 1,
    reboot_build_id: row.reboot_build_id === null ? null : Number(row.reboot_build_id),
  };
}

function bmcColumns(bmc: StoredBmc) {
  return {
    bmc_type: bmc.type,
    bmc_address: bmc.address,
    bmc_username: bmc.username,
    bmc_password_sealed: bmc.password_sealed,
    credential_set_id: bmc.credential_set_id,
    verify_tls: bmc.verify_tls ? 1 : 0,
    tls_fingerprint: bmc.tls_fingerprint,
    tls_ca_bundle: bmc.tls_ca_bundle,
    redfish_auth: bmc.auth,
    system_id: bmc.system_id,
  };
}

/** The machine_power table. */
export class SqlPowerStore implements PowerStore {
  constructor(private readonly db: Kysely<Schema>) {}

  async get(machineId: number): Promise<MachinePower | undefined> {
    const row = await this.db.selectFrom('machine_power').selectAll().where('machine_id', '=', machineId).executeTakeFirst();
    return row ? toMachinePower(row) : undefined;
  }

  async setBmc(machineId: number, bmc: StoredBmc, rebootOnPublish: boolean | undefined, now: string): Promise<MachinePower> {
    const columns = { ...bmcColumns(bmc), updated_at: now, ...(rebootOnPublish === undefined ? {} : { reboot_on_publish: rebootOnPublish ? 1 : 0 }) };
    await this.db
      .insertInto('machine_power')
      .values({ machine_id: machineId, power_state: 'unknown', checked_at: null, reboot_build_id: null, reboot_on_publish: 0, ...columns })
      .onConflict((oc) => oc.column('machine_id').doUpdateSet(columns))
      .execute();
    return (await this.get(machineId))!;
  }

  async clearBmc(machineId: number, now: string): Promise<boolean> {
    const result = await this.db
      .updateTable('machine_power')
      .set({
        bmc_type: null,
        bmc_address: null,
        bmc_username: null,
        bmc_password_sealed: null,
        credential_set_id: null,
        tls_fingerprint: null,
        tls_ca_bundle: null,
        system_id: null,
        power_state: 'unknown',
        checked_at: null,
        reboot_on_publish: 0,
        updated_at: now,
      })
      .where('machine_id', '=', machineId)
      .where('bmc_type', 'is not', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async recordState(machineId: number, state: PowerState, checkedAt: string): Promise<void> {
    await this.db.updateTable('machine_power').set({ power_state: state, checked_at: checkedAt }).where('machine_id', '=', machineId).execute();
  }

  async listWithBmc(): Promise<Array<MachinePower & { service_tag: string }>> {
    const rows = await this.db
      .selectFrom('machine_power')
      .innerJoin('machines', 'machines.id', 'machine_power.machine_id')
      .selectAll('machine_power')
      .select('machines.service_tag')
      .where('machine_power.bmc_type', 'is not', null)
      .orderBy('machine_power.machine_id')
      .execute();
    return rows.map((row) => ({ ...toMachinePower(row), service_tag: row.service_tag }));
  }

  async states(machineIds: number[]): Promise<Array<{ machine_id: number; power_state: PowerState; checked_at: string | null }>> {
    if (machineIds.length === 0) return [];
    const rows = await this.db
      .selectFrom('machine_power')
      .select(['machine_id', 'power_state', 'checked_at'])
      .where('machine_id', 'in', machineIds)
      .where('bmc_type', 'is not', null)
      .orderBy('machine_id')
      .execute();
    return rows.map((r) => ({ machine_id: Number(r.machine_id), power_state: r.power_state as PowerState, checked_at: r.checked_at }));
  }

  async claimReboot(machineId: number, buildId: number): Promise<boolean> {
    const result = await this.db
      .updateTable('machine_power')
      .set({ reboot_build_id: buildId })
      .where('machine_id', '=', machineId)
      .where('bmc_type', 'is not', null)
      .where('reboot_on_publish', '=', 1)
      .where((eb) => eb.or([eb('reboot_build_id', 'is', null), eb('reboot_build_id', '<', buildId)]))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }
}

function toCredentialSet(row: Selectable<BmcCredentialSetsTable>): BmcCredentialSet {
  return {
    id: Number(row.id),
    name: row.name,
    username: row.username,
    password_sealed: row.password_sealed,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

/** The bmc_credential_sets table. */
export class SqlBmcCredentialSetStore implements BmcCredentialSetStore {
  constructor(private readonly db: Kysely<Schema>) {}

  async list(): Promise<BmcCredentialSet[]> {
    return (await this.db.selectFrom('bmc_credential_sets').selectAll().orderBy('name').execute()).map(toCredentialSet);
  }

  async findByName(name: string): Promise<BmcCredentialSet | undefined> {
    const row = await this.db.selectFrom('bmc_credential_sets').selectAll().where('name', '=', name).executeTakeFirst();
    return row ? toCredentialSet(row) : undefined;
  }

  async findById(id: number): Promise<BmcCredentialSet | undefined> {
    const row = await this.db.selectFrom('bmc_credential_sets').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toCredentialSet(row) : undefined;
  }

  async insert(set: { name: string; username: string; passwordSealed: string; now: string }): Promise<BmcCredentialSet> {
    try {
      const row = await this.db
        .insertInto('bmc_credential_sets')
        .values({ name: set.name, username: set.username, password_sealed: set.passwordSealed, created_at: set.now, updated_at: set.now })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toCredentialSet(row);
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateKeyError(`bmc credential set ${set.name} already exists`, { cause: err });
      throw err;
    }
  }

  async update(id: number, changes: { username?: string; passwordSealed?: string; now: string }): Promise<BmcCredentialSet | undefined> {
    await this.db
      .updateTable('bmc_credential_sets')
      .set({
        updated_at: changes.now,
        ...(changes.username !== undefined ? { username: changes.username } : {}),
        ...(changes.passwordSealed !== undefined ? { password_sealed: changes.passwordSealed } : {}),
      })
      .where('id', '=', id)
      .execute();
    return this.findById(id);
  }

  async delete(id: number): Promise<boolean> {
    const result = await this.db.deleteFrom('bmc_credential_sets').where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async usageCount(id: number): Promise<number> {
    const row = await this.db
      .selectFrom('machine_power')
      .select((eb) => eb.fn.countAll<string | number>().as('n'))
      .where('credential_set_id', '=', id)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}
