import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * Runs SQLite writes that nobody waits on the answer of (a boot server's `last_seen_at` batches) in a
 * worker thread with its own connection to the same file.
 *
 * better-sqlite3 is synchronous: a write holds the thread that makes it for as long as SQLite takes,
 * which includes waiting for another process's write lock (up to the busy timeout) and, now and
 * then, a WAL checkpoint that copies pages back into the database file. Measured under a boot storm
 * (10,000 machines, 2,000 scripts a second), such writes on the main thread held it for 40 to 100 ms
 * at a time, and every script request that arrived meanwhile waited (bench/analysis.md). In a worker
 * they hold only the worker: WAL readers are never blocked by a writer, so the main thread's reads of
 * the change feed go on.
 *
 * The worker's code is a string run with `eval` so that it needs no TypeScript loader; it loads
 * better-sqlite3 from the path this module resolves.
 */
export class SqliteSideWriter {
  private worker: Worker | undefined;
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (changes: number) => void; reject: (err: Error) => void }>();
  private readonly pending = new Set<Promise<void>>();
  private closed = false;

  constructor(
    /** The database file (not `:memory:`, which a second connection cannot share). */
    private readonly path: string,
    /** How long (ms) a write waits for another connection's lock before it fails. */
    private readonly busyTimeoutMs = 5000,
  ) {}

  /** Runs one statement with its parameters; resolves with the rows it changed. */
  run(sqlText: string, parameters: readonly unknown[]): Promise<number> {
    if (this.closed) return Promise.reject(new Error('storage: the SQLite side writer is closed'));
    const worker = this.start();
    const id = this.next++;
    const done = new Promise<number>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ id, sql: sqlText, parameters });
      // Only pending writes keep the process alive; an idle writer does not.
      worker.ref();
    });
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    this.pending.add(settled);
    void settled.then(() => this.pending.delete(settled));
    return done;
  }

  /** Waits for the writes already asked for, then ends the worker. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.pending);
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { driver: createRequire(import.meta.url).resolve('better-sqlite3'), path: this.path, busyTimeoutMs: this.busyTimeoutMs },
    });
    worker.on('message', (message: { id: number; changes?: number; error?: string; code?: string }) => {
      const w = this.waiting.get(message.id);
      if (!w) return;
      this.waiting.delete(message.id);
      if (this.waiting.size === 0) worker.unref();
      if (message.error === undefined) w.resolve(message.changes ?? 0);
      else w.reject(Object.assign(new Error(message.error), message.code ? { code: message.code } : {}));
    });
    worker.on('error', (err) => this.fail(worker, err));
    worker.on('exit', (code) => this.fail(worker, new Error(`storage: the SQLite side writer stopped (exit code ${code})`)));
    worker.unref();
    this.worker = worker;
    return worker;
  }

  /** A worker that died fails what it had not answered; the next write starts a new one. */
  private fail(worker: Worker, err: Error): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiting) w.reject(err);
  }
}

/** The worker: one connection, statements prepared once, answers in order. Plain JavaScript (eval). */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const SQLite = require(workerData.driver);
const db = new SQLite(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = ' + Number(workerData.busyTimeoutMs));
db.pragma('synchronous = NORMAL');
db.pragma('foreign_keys = ON');
const statements = new Map();
parentPort.on('message', ({ id, sql, parameters }) => {
  try {
    let statement = statements.get(sql);
    if (!statement) {
      if (statements.size >= 64) statements.clear();
      statement = db.prepare(sql);
      statements.set(sql, statement);
    }
    parentPort.postMessage({ id, changes: statement.run(...parameters).changes });
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message || err), code: err && typeof err.code === 'string' ? err.code : undefined });
  }
});
`;
