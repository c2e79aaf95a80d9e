/** Plain-text tables and status colours for terminal output. */
import { binaryBytes, decimalBytes } from '../../core/byte-units.ts';

const STATUS_COLOURS: Record<string, number> = {
  enrolled: 36, // cyan
  configured: 34, // blue
  pending: 33, // yellow
  building: 33,
  ready: 32, // green
  success: 32,
  failed: 31, // red
  cancelled: 35, // magenta
};

/** Whether to colour output: only on a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function shouldColour(stream: { isTTY?: boolean }, env: Record<string, string | undefined> = process.env): boolean {
  return stream.isTTY === true && !env.NO_COLOR;
}

/** A status word in its colour, or as is when colour is off. */
export function colourStatus(status: string, colour: boolean): string {
  const code = STATUS_COLOURS[status];
  return colour && code ? `\u001b[${code}m${status}\u001b[0m` : status;
}

/** A cell: plain text, and optionally how to paint it after padding (so colour codes never break alignment). */
export type Cell = string | { text: string; paint: (padded: string) => string };

/** Lines of a table with columns aligned on the longest cell; the last column is not padded. */
export function formatTable(headers: string[], rows: Cell[][]): string[] {
  const text = (cell: Cell | undefined) => (cell === undefined ? '' : typeof cell === 'string' ? cell : cell.text);
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => text(r[i]).length)));
  const line = (cells: Cell[]) =>
    cells
      .map((cell, i) => {
        const padded = i === cells.length - 1 ? text(cell) : text(cell).padEnd(widths[i] ?? 0);
        return typeof cell === 'string' ? padded : cell.paint(padded);
      })
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)];
}

/** A status cell, coloured when colour is on. */
export function statusCell(status: string, colour: boolean): Cell {
  return { text: status, paint: (padded) => padded.replace(status, colourStatus(status, colour)) };
}

/** Removes control characters from a server-provided string before it reaches the terminal. */
export function printable(value: string | null | undefined): string {
  if (value === null || value === undefined) return '';
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\n\t]/g, ' ').replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** Memory and files: `1.5 GiB` from bytes; '' for no size. */
export function formatBytes(bytes: number | undefined | null): string {
  return binaryBytes(bytes) ?? '';
}

/** Disks, in decimal units as vendors label them (and as the dashboard shows them): `960 GB`; '' for no size. */
export function formatDiskBytes(bytes: number | undefined | null): string {
  return decimalBytes(bytes) ?? '';
}

/** A build log made safe for a terminal: lines and tabs kept, escape sequences and other control characters dropped. */
export function printableLog(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;?]*[ -/]*[@-~]/g, '').replace(/\r(?!\n)/g, '\n').replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '');
}

/**
 * Makes a streamed log printable chunk by chunk: an escape sequence or a `\r\n` split between two chunks
 * is held back until the next one, so it is removed or kept whole.
 */
export class LogPrinter {
  #held = '';

  constructor(private readonly write: (text: string) => void) {}

  push(chunk: string): void {
    const text = this.#held + chunk;
    // eslint-disable-next-line no-control-regex
    const tail = /\u001b(\[[0-9;?]*[ -/]*)?$|\r$/.exec(text);
    this.#held = tail ? tail[0] : '';
    const ready = tail ? text.slice(0, tail.index) : text;
    if (ready) this.write(printableLog(ready));
  }

  /** Prints what was held back, at the end of the stream. */
  flush(): void {
    if (this.#held) this.write(printableLog(this.#held));
    this.#held = '';
  }
}
