// A host's status from its open findings (see ../host-status.ts), on a transaction's client.
import { hostCountOf } from '../host-status.js';
import type { HostCount } from '../host-status.js';
import type { StatusWhy } from '../types.js';
import type { Sql } from './db.js';

/** What counts: open, not waived by a rule, not approved in this very state (unexpired at `now`). */
const COUNTED = `SELECT severity, count(*) AS n FROM findings f
  WHERE f.host_id = $1 AND f.resolved_at IS NULL AND f.waived = 0
    AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.finding_id = f.id AND a.identity = f.identity AND a.reopened_at IS NULL
                    AND (a.expires_at IS NULL OR a.expires_at > $2))
  GROUP BY severity`;

export async function countHost(q: Sql, hostId: string, now: Date): Promise<HostCount> {
  return hostCountOf(await q.rows<{ severity: string; n: number }>(COUNTED, [hostId, now.toISOString()]));
}

/** Notes a change of the stored status in the history (nothing when it did not change), in the caller's transaction. */
export async function noteStatus(q: Sql, hostId: string, before: string | null, after: string, now: Date, why: StatusWhy): Promise<void> {
  if (before === after) return;
  await q.run('INSERT INTO host_status_changes (host_id, from_status, to_status, at, cause, actor) VALUES ($1, $2, $3, $4, $5, $6)', [hostId, before, after, now.toISOString(), why.cause, why.actor]);
}

/** Counts again and stores the result (a change goes into the history, `why`); returns the status before and after. */
export async function refreshHost(q: Sql, hostId: string, now: Date, why: StatusWhy): Promise<{ before: string; after: 'cattle' | 'pet' }> {
  const before = (await q.row<{ status: string }>('SELECT status FROM hosts WHERE id = $1', [hostId]))?.status ?? null;
  const c = await countHost(q, hostId, now);
  await q.run(
    `UPDATE hosts SET status = $2, pet_since = CASE WHEN $2 = 'pet' THEN coalesce(pet_since, $3) ELSE NULL END, drift_score = $4, open_findings = $5 WHERE id = $1`,
    [hostId, c.status, now.toISOString(), c.score, c.open],
  );
  if (before !== null) await noteStatus(q, hostId, before, c.status, now, why);
  return { before: before ?? 'stale', after: c.status };
}
