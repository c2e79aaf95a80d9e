/** Human units and times for the dashboard; pure so they can be tested on their own. */

import { binaryBytes, decimalBytes, trimNumber } from '../core/byte-units.ts';

/** Memory in binary units, e.g. 412316860416 -> "384 GiB". */
export function formatBinaryBytes(bytes: number | null | undefined): string {
  return binaryBytes(bytes) ?? '—';
}

/** Disk and file sizes in decimal units as vendors label them, e.g. 960197124096 -> "960 GB". */
export function formatDecimalBytes(bytes: number | null | undefined): string {
  return decimalBytes(bytes) ?? '—';
}

/** Link speed from Mb/s, e.g. 25000 -> "25 Gb/s", 100 -> "100 Mb/s"; unknown -> "—". */
export function formatLinkSpeed(mbps: number | null | undefined): string {
  if (typeof mbps !== 'number' || !Number.isFinite(mbps) || mbps <= 0) return '—';
  return mbps >= 1000 ? `${trimNumber(mbps / 1000)} Gb/s` : `${trimNumber(mbps)} Mb/s`;
}

/** Three significant digits at most, no trailing zeros: 1.5, 960, 3.64, 12.3. */

/** "just now", "3 min ago", "2 h ago", "5 days ago"; "in the future" for clock skew; "never" for null. */
export function formatRelativeTime(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) return 'never';
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return '—';
  const seconds = Math.round((now.getTime() - then) / 1000);
  if (seconds < -60) return 'in the future';
  if (seconds < 60) return 'just now';
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  const days = Math.floor(hours / 24);
  if (days < 60) return `${days} day${days === 1 ? '' : 's'} ago`;
  return iso.slice(0, 10);
}

/** A duration between two ISO times (or until `now` while running), e.g. "1 min 05 s", "42 s", "—". */
export function formatDuration(startIso: string | null | undefined, endIso: string | null | undefined, now: Date = new Date()): string {
  if (!startIso) return '—';
  const start = Date.parse(startIso);
  const end = endIso ? Date.parse(endIso) : now.getTime();
  if (Number.isNaN(start) || Number.isNaN(end) || end < start) return '—';
  const total = Math.round((end - start) / 1000);
  if (total < 60) return `${total} s`;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h} h ${String(m).padStart(2, '0')} min`;
  return `${m} min ${String(s).padStart(2, '0')} s`;
}

/** A UTC timestamp for titles and tables, e.g. "2026-11-25 20:31:07 UTC". */
export function formatTimestamp(iso: string | null | undefined): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '—';
  return `${new Date(t).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** A count with thousands separators, e.g. 10000 -> "10,000". */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}
