import { RepeatedFailure } from '../core/repeated-failure.ts';
import type { Logger } from '../core/logger.ts';
import type { Notifier } from '../core/notifier.ts';
import type { BootFeed, BootKey, BootRow, BootTarget, BuildBootFacts } from '../core/ports.ts';

/** Tuning of the table; the defaults suit production. */
export interface BootTableOptions {
  /**
   * How far back (ms) each catch-up re-reads, for feeds whose versions can commit out of order
   * (PostgreSQL sequences: a transaction that took version 7 may commit after one that took 8).
   * 0 for feeds that commit in order (SQLite).
   */
  lagMs?: number;
  /** A catch-up at least this often (ms) even without a signal: the safety net for a lost one. */
  pollMs?: number;
}

/**
 * The boot server's decision table in memory: for each machine what its script needs (tag, MAC,
 * UUID, status, published build and its token), loaded at start and kept fresh by the storage's
 * change feed. Script requests never wait for the database, except right after this process itself
 * changed a machine: then the next lookup waits for one catch-up, so a change made here is served at
 * once; a change made by another process arrives with its signal (NOTIFY, or SQLite's data_version).
 */
export class BootTable {
  private readonly byId = new Map<number, TableRow>();
  private readonly byTag = new Map<string, number>();
  private readonly byMac = new Map<string, Set<number>>();
  private readonly byUuid = new Map<string, Set<number>>();
  /** Published build id -> machine id. */
  private readonly byBuild = new Map<number, number>();
  /** Published build's image key -> build id. */
  private readonly byImageKey = new Map<string, number>();
  /** Highest version applied, and what it was `lagMs` ago (where catch-ups start). */
  private cursor = 0;
  private readonly history: Array<{ at: number; cursor: number }> = [];
  private refreshing: Promise<void> | undefined;
  private again = false;
  private stale = false;
  private stopWatching: (() => Promise<void>) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly lagMs: number;
  private readonly supersededListeners: Array<(row: Readonly<BootTarget>) => void> = [];
  /** A catch-up started by a change made in this process, which lookups wait for. */
  private local: Promise<void> | undefined;
  private readonly onLocalChange = () => {
    this.stale = true;
    const pending = this.refresh();
    this.local = pending;
    void pending.finally(() => {
      if (this.local === pending) this.local = undefined;
    });
  };

  constructor(
    private readonly feed: BootFeed,
    private readonly notifier: Notifier,
    logger: Logger,
    options: BootTableOptions = {},
  ) {
    this.lagMs = options.lagMs ?? 0;
    this.pollMs = options.pollMs ?? 1000;
    this.readFailures = new RepeatedFailure(logger, 'boot: could not read machine changes; serving what is known', 'boot: machine changes are read again');
  }

  /** A database outage is logged once, then once a minute, not at every poll. */
  private readonly readFailures: RepeatedFailure;

  private readonly pollMs: number;

  /** Loads every machine and starts following changes. */
  async start(): Promise<void> {
    this.apply(await this.feed.changes());
    this.notifier.on('machine.updated', this.onLocalChange);
    this.stopWatching = await this.feed.watch(() => void this.refresh());
    this.timer = setInterval(() => void this.refresh(), this.pollMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.notifier.off('machine.updated', this.onLocalChange);
    await this.stopWatching?.();
    await this.refreshing;
  }

  /** How many machines the table holds. */
  get size(): number {
    return this.byId.size;
  }

  /** The machine (lowest id) whose `key` is `value`. */
  async findMachine(key: BootKey, value: string): Promise<BootTarget | undefined> {
    if (this.stale) await this.refresh();
    else if (this.local) await this.local;
    let id: number | undefined;
    if (key === 'service_tag') id = this.byTag.get(value);
    else {
      const ids = (key === 'mac_address' ? this.byMac : this.byUuid).get(value);
      if (ids) for (const candidate of ids) if (id === undefined || candidate < id) id = candidate;
    }
    const row = id === undefined ? undefined : this.byId.get(id);
    return row && { id: row.id, serviceTag: row.serviceTag, status: row.status, imageBuildId: row.imageBuildId, systemUuid: row.systemUuid, identityConflict: row.identityConflict };
  }

  /**
   * The current row of the machine with this tag, without waiting: undefined when there is none, or
   * while a catch-up that lookups wait for is due. Rows are replaced, never changed, on every change
   * to their machine, so a caller may keep one and later ask whether it is still the current one.
   */
  peekTag(tag: string): Readonly<BootTarget> | undefined {
    if (this.stale || this.local) return undefined;
    const id = this.byTag.get(tag);
    return id === undefined ? undefined : this.byId.get(id);
  }

  /**
   * Whether a row `peekTag` returned is still its machine's current row, still found by its tag, with
   * no catch-up due that lookups wait for: `peekTag(row.serviceTag) === row`, without a lookup.
   */
  isCurrent(row: Readonly<BootTarget>): boolean {
    return this.isUpToDate() && (row as Partial<TableRow>).superseded === false;
  }

  /** No catch-up is due that lookups wait for: a row `peekTag` returned is current until `onSuperseded` names it. */
  isUpToDate(): boolean {
    return !this.stale && this.local === undefined;
  }

  /**
   * Calls `listener` with each row as it stops being current (replaced, deleted, or its tag taken by
   * another row), at that moment: what keeps something derived from a row in step with the table
   * without reading the row again.
   */
  onSuperseded(listener: (row: Readonly<BootTarget>) => void): void {
    this.supersededListeners.push(listener);
  }

  /** The owner and token of a published build. */
  async buildFacts(buildId: number): Promise<BuildBootFacts | undefined> {
    const machineId = this.byBuild.get(buildId);
    const row = machineId === undefined ? undefined : this.byId.get(machineId);
    if (!row || row.imageBuildId !== buildId || row.bootToken === null || row.imageKey === null) return undefined;
    return { machineId: row.id, bootToken: row.bootToken, imageKey: row.imageKey };
  }

  /** The published build whose image URLs carry `imageKey`. */
  async buildIdOfImageKey(imageKey: string): Promise<number | undefined> {
    return this.byImageKey.get(imageKey);
  }

  /** Catches up with the feed; concurrent calls fold into one pass plus one more. */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        const wasStale = this.stale;
        this.stale = false;
        try {
          this.apply(await this.feed.changes(this.since()));
          this.readFailures.succeeded();
        } catch (err) {
          if (wasStale) this.stale = true;
          this.readFailures.failed(err);
          break;
        }
      } while (this.again);
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /**
   * Where the next catch-up starts: the cursor as it was `lagMs` ago (0 until the table is that old),
   * so a version that committed late is still read.
   */
  private since(): number {
    if (this.lagMs <= 0) return this.cursor;
    const now = Date.now();
    let base = 0;
    let keep = 0;
    for (let i = 0; i < this.history.length && now - this.history[i]!.at >= this.lagMs; i++) {
      base = this.history[i]!.cursor;
      keep = i;
    }
    this.history.splice(0, keep);
    return base;
  }

  private apply(changes: { rows: BootRow[]; deleted: Array<{ id: number; version: number }> }): void {
    for (const row of changes.rows) {
      const current = this.byId.get(row.id);
      if (current && current.version >= row.version) continue;
      if (current) this.unindex(current);
      const fresh = row as TableRow;
      fresh.superseded = false;
      this.byId.set(row.id, fresh);
      this.index(fresh);
      if (row.version > this.cursor) this.cursor = row.version;
    }
    for (const gone of changes.deleted) {
      const current = this.byId.get(gone.id);
      if (current && current.version < gone.version) {
        this.unindex(current);
        this.byId.delete(gone.id);
      }
      if (gone.version > this.cursor) this.cursor = gone.version;
    }
    if (this.lagMs > 0) this.history.push({ at: Date.now(), cursor: this.cursor });
  }

  private index(row: TableRow): void {
    // A tag moves to this row: the row that had it is no longer the one its tag finds.
    const holder = this.byTag.get(row.serviceTag);
    if (holder !== undefined && holder !== row.id) {
      const other = this.byId.get(holder);
      if (other) this.supersede(other);
    }
    this.byTag.set(row.serviceTag, row.id);
    if (row.macAddress) addTo(this.byMac, row.macAddress, row.id);
    if (row.systemUuid) addTo(this.byUuid, row.systemUuid, row.id);
    if (row.imageBuildId !== null) this.byBuild.set(row.imageBuildId, row.id);
    if (row.imageBuildId !== null && row.imageKey !== null) this.byImageKey.set(row.imageKey, row.imageBuildId);
  }

  private supersede(row: TableRow): void {
    if (row.superseded) return;
    row.superseded = true;
    for (const listener of this.supersededListeners) listener(row);
  }

  private unindex(row: TableRow): void {
    this.supersede(row);
    if (this.byTag.get(row.serviceTag) === row.id) this.byTag.delete(row.serviceTag);
    if (row.macAddress) removeFrom(this.byMac, row.macAddress, row.id);
    if (row.systemUuid) removeFrom(this.byUuid, row.systemUuid, row.id);
    if (row.imageBuildId !== null && this.byBuild.get(row.imageBuildId) === row.id) this.byBuild.delete(row.imageBuildId);
    if (row.imageKey !== null && this.byImageKey.get(row.imageKey) === row.imageBuildId) this.byImageKey.delete(row.imageKey);
  }
}

/** A row as the table holds it: marked once it is replaced, deleted or loses its tag to another row. */
type TableRow = BootRow & { superseded: boolean };

function addTo(map: Map<string, Set<number>>, key: string, id: number): void {
  let ids = map.get(key);
  if (!ids) map.set(key, (ids = new Set()));
  ids.add(id);
}

function removeFrom(map: Map<string, Set<number>>, key: string, id: number): void {
  const ids = map.get(key);
  if (!ids) return;
  ids.delete(id);
  if (ids.size === 0) map.delete(key);
}
