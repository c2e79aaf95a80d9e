/**
 * The setting `metal backup` writes once a backup is whole, `{"at": ISO time, "rows": n}`: read by
 * the metrics (`metal_last_backup_timestamp_seconds`) and the dashboard's overview, so that backups
 * that stop are seen.
 */
export const LAST_BACKUP_SETTING = 'last_backup';

/** A recorded backup. */
export interface BackupRecord {
  at: Date;
  rows: number;
}

/** The setting's value for a backup taken at `at` holding `rows` rows. */
export function formatBackupRecord(record: BackupRecord): string {
  return JSON.stringify({ at: record.at.toISOString(), rows: record.rows });
}

/** The recorded backup, or undefined when there is none or the value is not one (never throws). */
export function parseBackupRecord(value: string | undefined): BackupRecord | undefined {
  if (value === undefined) return undefined;
  try {
    const parsed = JSON.parse(value) as { at?: unknown; rows?: unknown };
    const at = typeof parsed.at === 'string' ? new Date(parsed.at) : undefined;
    if (!at || Number.isNaN(at.getTime())) return undefined;
    return { at, rows: typeof parsed.rows === 'number' && Number.isFinite(parsed.rows) ? parsed.rows : 0 };
  } catch {
    return undefined;
  }
}
