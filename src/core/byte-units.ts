/** Sizes in human units, the same in the dashboard and the command line. */

const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
const DECIMAL_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

/** Memory and files in binary units, e.g. 412316860416 -> "384 GiB"; undefined for no size. */
export function binaryBytes(bytes: unknown): string | undefined {
  return scaled(bytes, 1024, BINARY_UNITS);
}

/** Disks in decimal units, as vendors label them, e.g. 960197124096 -> "960 GB"; undefined for no size. */
export function decimalBytes(bytes: unknown): string | undefined {
  return scaled(bytes, 1000, DECIMAL_UNITS);
}

function scaled(value: unknown, base: number, units: string[]): string | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) return undefined;
  let v = value;
  let i = 0;
  while (v >= base && i < units.length - 1) {
    v /= base;
    i += 1;
  }
  return `${i === 0 ? v : trimNumber(v)} ${units[i]}`;
}

/** Three significant digits at most, without trailing zeros: 960, 96.5, 9.65. */
export function trimNumber(v: number): string {
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return String(Number(v.toFixed(digits)));
}
