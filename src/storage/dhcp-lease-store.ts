import type { Kysely } from 'kysely';
import { isUniqueViolation } from './unique-violation.ts';

/** The table of migration 0010-dhcp-leases. Times are ISO 8601 UTC strings. */
export interface DhcpLeasesTable {
  /** e.g. `10.0.0.123` */
  address: string;
  /** e.g. `52:54:00:12:34:56`; `declined:<address>` for an address a client found in use. */
  mac: string;
  expires_at: string;
  updated_at: string;
}

export interface LeaseSchema {
  dhcp_leases: DhcpLeasesTable;
}

/** The same database handle, typed for the lease table (its own migration, not in `Schema`). */
export function leaseDb<T>(db: Kysely<T>): Kysely<LeaseSchema> {
  return db as unknown as Kysely<LeaseSchema>;
}

/** One lease as stored. */
export interface StoredLease {
  address: string;
  mac: string;
  expiresAt: string;
}

/** DHCP leases (the pxe role's full DHCP server): one address per MAC and one MAC per address. */
export class DhcpLeaseStore {
  constructor(private readonly db: Kysely<LeaseSchema>) {}

  /** The lease of a MAC, expired or not. */
  async leaseOf(mac: string): Promise<StoredLease | undefined> {
    const row = await this.db.selectFrom('dhcp_leases').selectAll().where('mac', '=', mac).executeTakeFirst();
    return row && { address: row.address, mac: row.mac, expiresAt: row.expires_at };
  }

  /** Addresses whose lease has not expired at `now`. */
  async heldAddresses(now: string): Promise<Set<string>> {
    const rows = await this.db.selectFrom('dhcp_leases').select('address').where('expires_at', '>', now).execute();
    return new Set(rows.map((r) => r.address));
  }

  /**
   * Gives `address` to `mac` until `expiresAt`, replacing the MAC's previous lease and any expired
   * lease of the address. False, with nothing changed, when another MAC holds the address.
   */
  async claim(mac: string, address: string, expiresAt: string, now: string): Promise<boolean> {
    try {
      return await this.db.transaction().execute(async (trx) => {
        await trx.deleteFrom('dhcp_leases').where('address', '=', address).where('expires_at', '<=', now).execute();
        const holder = await trx.selectFrom('dhcp_leases').select('mac').where('address', '=', address).executeTakeFirst();
        if (holder && holder.mac !== mac) return false;
        await trx.deleteFrom('dhcp_leases').where('mac', '=', mac).execute();
        await trx.insertInto('dhcp_leases').values({ address, mac, expires_at: expiresAt, updated_at: now }).execute();
        return true;
      });
    } catch (err) {
      // Two claims of one address at once: the second loses, as if it had looked a moment later.
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  /** Ends the lease of `mac` on `address` (a DHCPRELEASE); nothing when it holds another. */
  async release(mac: string, address: string): Promise<void> {
    await this.db.deleteFrom('dhcp_leases').where('mac', '=', mac).where('address', '=', address).execute();
  }
}
