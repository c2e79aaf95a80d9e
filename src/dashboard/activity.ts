import type { Storage } from '../storage/storage.ts';

/** An event line on the overview, with the service tag of its machine when it still exists. */
export interface ActivityEvent {
  id: number;
  kind: string;
  message: string;
  actor: string;
  created_at: string;
  service_tag: string | null;
}

/** A build line on the overview and machine pages. */
export interface ActivityBuild {
  id: number;
  status: string;
  service_tag: string;
  hostname: string;
  error: string | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
}

/** The newest events of the whole fleet (`machineId` narrows to one machine). */
export async function recentEvents(storage: Storage, limit: number, machineId?: number): Promise<ActivityEvent[]> {
  let q = storage.db
    .selectFrom('events')
    .leftJoin('machines', 'machines.id', 'events.machine_id')
    .select([
      'events.id',
      'events.kind',
      'events.message',
      'events.actor_kind',
      'events.actor_name',
      'events.created_at',
      'machines.service_tag',
    ]);
  if (machineId !== undefined) q = q.where('events.machine_id', '=', machineId);
  const rows = await q.orderBy('events.id', 'desc').limit(limit).execute();
  return rows.map((r) => ({
    id: Number(r.id),
    kind: r.kind,
    message: r.message,
    actor: r.actor_kind === 'system' ? 'system' : `${r.actor_kind}:${r.actor_name}`,
    created_at: r.created_at,
    service_tag: r.service_tag ?? null,
  }));
}

/** The newest builds, without their logs (`machineId` narrows to one machine). */
export async function recentBuilds(storage: Storage, limit: number, machineId?: number): Promise<ActivityBuild[]> {
  let q = storage.db
    .selectFrom('builds')
    .select(['id', 'status', 'service_tag', 'hostname', 'error', 'created_at', 'started_at', 'completed_at']);
  if (machineId !== undefined) q = q.where('machine_id', '=', machineId);
  const rows = await q.orderBy('id', 'desc').limit(limit).execute();
  return rows.map((r) => ({ ...r, id: Number(r.id) }));
}
