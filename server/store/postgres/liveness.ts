// When a host was last heard from, on PostgreSQL: heartbeats write host_heartbeats (a narrow row,
// see migrations.ts), hellos and reports write hosts.last_seen with the rest of the host's row.
// A reader shows the later of the two, with the outbox depth that came with it.
import type { Sql } from './db.js';
import { compareCodeUnits } from '../../../shared/order.js';

export interface Heartbeat {
  agentId: string;
  outboxDepth: number;
  receivedAt: Date;
}

/** The last heartbeat of each host, in host id order (the order rows are locked in). Pure. */
export function lastHeartbeatOfEach<H extends Heartbeat>(beats: readonly H[]): H[] {
  const last = new Map<string, H>();
  for (const b of beats) last.set(b.agentId, b);
  return [...last.values()].sort((a, b) => compareCodeUnits(a.agentId, b.agentId));
}

/**
 * Heartbeats in one statement (ON CONFLICT touches a row once per statement: one beat a host).
 * A beat older than the stored one (another node's, a batch that waited) changes nothing; an
 * unknown host is skipped, as the UPDATE of hosts it replaces skipped it.
 */
export async function storeHeartbeats(q: Sql, beats: readonly Heartbeat[]): Promise<void> {
  const each = lastHeartbeatOfEach(beats);
  if (each.length === 0) return;
  await q.run(
    `INSERT INTO host_heartbeats AS b (host_id, seen_at, outbox_depth)
     SELECT u.id, u.now, u.depth FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(id, now, depth) WHERE EXISTS (SELECT 1 FROM hosts h WHERE h.id = u.id)
     ON CONFLICT (host_id) DO UPDATE SET seen_at = excluded.seen_at, outbox_depth = excluded.outbox_depth WHERE excluded.seen_at >= b.seen_at`,
    [each.map((b) => b.agentId), each.map((b) => b.receivedAt.toISOString()), each.map((b) => b.outboxDepth)],
  );
}

interface Live {
  id: string;
  last_seen: string | null;
  outbox_depth: number;
}

/** The later of a host row's own last_seen and its last heartbeat. Pure. */
export function liveOf<R extends Live>(row: R, beat: { seen_at: string; outbox_depth: number } | undefined): R {
  if (beat === undefined || (row.last_seen !== null && row.last_seen >= beat.seen_at)) return row;
  return { ...row, last_seen: beat.seen_at, outbox_depth: Number(beat.outbox_depth) };
}

/** Host rows with their heartbeats applied (one query for the lot). */
export async function withHeartbeats<R extends Live>(q: Sql, rows: readonly R[]): Promise<R[]> {
  if (rows.length === 0) return [];
  const beats = await q.rows<{ host_id: string; seen_at: string; outbox_depth: number }>(
    'SELECT host_id, seen_at, outbox_depth FROM host_heartbeats WHERE host_id = ANY($1::text[])',
    [rows.map((r) => r.id)],
  );
  const by = new Map(beats.map((b) => [b.host_id, b]));
  return rows.map((r) => liveOf(r, by.get(r.id)));
}
