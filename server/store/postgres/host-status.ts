// A host's status from its open findings (see ../host-status.ts), on a transaction's client.
import { hostCountOf } from '../host-status.js';
import type { HostCount } from '../host-status.js';
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

/** Counts again and stores the result; returns the status before and after. */
export async function refreshHost(q: Sql, hostId: string, now: Date): Promise<{ before: string; after: 'cattle' | 'pet' }> {
  const before = (await q.row<{ status: string }>('SELECT status FROM hosts WHERE id = $1', [hostId]))?.status ?? 'stale';
  const c = await countHost(q, hostId, now);
  await q.run(
    `UPDATE hosts SET status = $2, pet_since = CASE WHEN $2 = 'pet' THEN coalesce(pet_since, $3) ELSE NULL END, drift_score = $4, open_findings = $5 WHERE id = $1`,
    [hostId, c.status, now.toISOString(), c.score, c.open],
  );
  return { before, after: c.status };
}
