import { open, type FileHandle } from 'node:fs/promises';

/** Files followed as they grow (QEMU's serial console logs), line by line. */
export interface ConsoleFollower {
  /** Reads what is left, hands over the last partial line, and stops. */
  stop(): Promise<void>;
  /** The last lines seen (at most `keep`), for a failure's reason. */
  lastLines(): string[];
}

/**
 * Console text as a log line: ANSI escape sequences (systemd's colours) and other control
 * characters go, a carriage return ends nothing, and a line is cut at 512 characters.
 */
export function cleanConsoleLine(raw: string): string {
  /* eslint-disable no-control-regex -- control characters are what this removes */
  const text = raw
    .replace(/\x1b\][^\x07\x1b]*(\x07|\x1b\\)/g, '')
    .replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '')
    .replace(/\x1b[@-_]/g, '')
    .replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '')
    .replace(/\t/g, ' ')
    .trimEnd();
  /* eslint-enable no-control-regex */
  return text.length > 512 ? `${text.slice(0, 512)}…` : text;
}

/**
 * Follows each of `paths` every `intervalMs` from its start (a missing file is waited for), handing
 * each complete line to `onLine` cleaned (cleanConsoleLine); blank lines are skipped.
 */
export function followConsole(paths: readonly string[], onLine: (line: string) => void, options: { intervalMs?: number; keep?: number } = {}): ConsoleFollower {
  const intervalMs = options.intervalMs ?? 250;
  const keep = options.keep ?? 20;
  const last: string[] = [];
  const files = paths.map((path) => new FollowedFile(path, (line) => emit(line)));
  let reading: Promise<void> = Promise.resolve();
  let stopping: Promise<void> | undefined;

  const emit = (raw: string) => {
    const line = cleanConsoleLine(raw);
    if (line === '') return;
    last.push(line);
    if (last.length > keep) last.shift();
    onLine(line);
  };
  const readMore = async () => {
    for (const file of files) await file.readMore();
  };
  const tick = () => {
    reading = reading.then(readMore).catch(() => undefined);
  };
  const timer = setInterval(tick, intervalMs);
  return {
    stop() {
      stopping ??= (async () => {
        clearInterval(timer);
        tick();
        await reading;
        for (const file of files) await file.close();
      })();
      return stopping;
    },
    lastLines: () => [...last],
  };
}

/** One followed file: where it was read to, and the line it has not finished yet. */
class FollowedFile {
  private handle: FileHandle | undefined;
  private position = 0;
  private partial = '';
  private readonly decoder = new TextDecoder('utf-8');
  private readonly buffer = Buffer.alloc(64 * 1024);

  constructor(
    private readonly path: string,
    private readonly onLine: (raw: string) => void,
  ) {}

  async readMore(): Promise<void> {
    if (!this.handle) {
      try {
        this.handle = await open(this.path, 'r');
      } catch {
        return;
      }
    }
    const buffer = this.buffer;
    for (;;) {
      const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, this.position);
      if (bytesRead === 0) return;
      this.position += bytesRead;
      this.partial += this.decoder.decode(buffer.subarray(0, bytesRead), { stream: true });
      const lines = this.partial.split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) this.onLine(line);
      // A console that never ends a line still reaches the log, 4 KiB at a time.
      if (this.partial.length > 4096) {
        this.onLine(this.partial);
        this.partial = '';
      }
    }
  }

  /** Hands over the unfinished last line and closes the file. */
  async close(): Promise<void> {
    this.partial += this.decoder.decode();
    if (this.partial !== '') this.onLine(this.partial);
    this.partial = '';
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }
}
