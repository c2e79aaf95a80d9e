/** Things to undo when the bench ends, fails or is interrupted: child processes, temporary directories. */
type Entry = { name: string; fn: () => Promise<void> | void };
const undo: Entry[] = [];
const registered = new WeakMap<Entry, () => Promise<void>>();
let installed = false;
let interrupted = false;

/** True once Ctrl-C or SIGTERM arrived: the run is being torn down and nothing new should start. */
export function isInterrupted(): boolean {
  return interrupted;
}

/** Registers `fn` to run at the end (last registered runs first); returns a function that runs it now instead. */
export function onCleanup(name: string, fn: () => Promise<void> | void): () => Promise<void> {
  installSignalHandlers();
  const entry = { name, fn };
  undo.push(entry);
  const run = async () => {
    const i = undo.indexOf(entry);
    if (i < 0) return;
    undo.splice(i, 1);
    await entry.fn();
  };
  registered.set(entry, run);
  return run;
}

/** Drops a registered cleanup without running it (what it undoes has ended by itself). */
export function forget(run: (() => Promise<void>) | undefined): void {
  const i = undo.findIndex((e) => registered.get(e) === run);
  if (i >= 0) undo.splice(i, 1);
}

/** Runs every registered cleanup, newest first; errors are reported, not thrown. */
export async function cleanupAll(): Promise<void> {
  while (undo.length > 0) {
    const entry = undo.pop()!;
    try {
      await entry.fn();
    } catch (err) {
      console.error(`bench: cleanup of ${entry.name} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      interrupted = true;
      console.error(`\nbench: ${signal}: stopping servers and removing temporary files`);
      void cleanupAll().finally(() => process.exit(130));
    });
  }
}
