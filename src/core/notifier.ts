import { EventEmitter } from 'node:events';

/** What parts of one process tell each other without going through the database. */
export interface NotifierEvents {
  /** A build became pending: wake an idle builder. */
  'build.requested': [buildId: number];
  /** A build was cancelled: stop it if it runs here. */
  'build.cancelled': [buildId: number];
  /** A build's status or log changed: wake followers of its log and live pages. */
  'build.updated': [buildId: number];
  /** A machine's record changed. */
  'machine.updated': [machineId: number];
}

/** In-process publish/subscribe. Cross-process wake-ups (PostgreSQL LISTEN/NOTIFY) feed into it. */
export class Notifier extends EventEmitter<NotifierEvents> {
  constructor() {
    super();
    this.setMaxListeners(0);
  }
}
