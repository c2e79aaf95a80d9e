import { EventEmitter } from 'node:events';

/** Where a signal came from: this process (undefined), or another one through the storage's relay. */
export type SignalOrigin = 'relay';

/** What parts of one process tell each other without going through the database. */
export interface NotifierEvents {
  /** A build became pending: wake an idle builder. */
  'build.requested': [buildId: number, origin?: SignalOrigin];
  /** A build was cancelled: stop it if it runs here. */
  'build.cancelled': [buildId: number, origin?: SignalOrigin];
  /** A build's status or log changed: wake followers of its log and live pages. */
  'build.updated': [buildId: number, origin?: SignalOrigin];
  /**
   * A build ended in this process: how, and how long it ran from its start (null when it never
   * started). Not relayed between processes: each process reports the builds it finished.
   */
  'build.finished': [buildId: number, result: 'success' | 'failed' | 'cancelled', seconds: number | null];
  /**
   * A build's image was booted in a VM (METAL_BUILD_BOOT_CHECK) in this process, or its profile
   * skipped that: the outcome, and how long the VM ran (null when none ran).
   */
  'build.boot_checked': [buildId: number, result: 'passed' | 'failed' | 'skipped', seconds: number | null];
  /** A machine's record changed. */
  'machine.updated': [machineId: number];
  /** A rollout was started or changed (wakes the rollout engine and live pages). */
  'rollout.updated': [rolloutId: number];
}

/** In-process publish/subscribe. Signals from other processes (PostgreSQL NOTIFY) are relayed into it. */
export class Notifier extends EventEmitter<NotifierEvents> {
  constructor() {
    super();
    this.setMaxListeners(0);
  }
}
