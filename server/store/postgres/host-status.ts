// A host's status from its open findings (see ../host-status.ts), on a transaction's client.
import { hostCountOf } from '../host-status.js';
import type { HostCount } from '../host-status.js';
import type { StatusWhy } from '../types.js';
import type { Sql } from './db.js';

/** A count and when it stops holding by time alone (hosts.recount_at): null, never. */
export type PgHostCount = HostCount & { recountAt: string | null };

/** What counts of one host's open findings at `now` (see COUNTED). */
export async function countHost(q: Sql, hostId: string, now: Date): Promise<PgHostCount> {
  return (await countHosts(q, [{ hostId, now }]))[0]!;
}

/** Notes a change of the stored status in the history (nothing when it did not change), in the caller's transaction. */
export async function noteStatus(q: Sql, hostId: string, before: string | null, after: string, now: Date, why: StatusWhy): Promise<void> {
  await noteStatuses(q, [{ hostId, before, after, now }], why);
}

/** Counts again and stores the result (a change goes into the history, `why`); returns the status before and after. */
export async function refreshHost(q: Sql, hostId: string, now: Date, why: StatusWhy): Promise<{ before: string; after: 'cattle' | 'pet' }> {
  // The host's row lock before counting: an ingest batch that holds it has committed its findings
  // by the time the count reads them, and one that comes later reads this count. Counted without
  // it (a rules change redecides every host unlocked), the count could miss a batch's new
  // findings, and later reports would add to that wrong count until the host is counted again.
  const before = (await q.row<{ status: string }>('SELECT status FROM hosts WHERE id = $1 FOR NO KEY UPDATE', [hostId]))?.status ?? null;
  const c = await countHost(q, hostId, now);
  await q.run(
    `UPDATE hosts SET status = $2, pet_since = CASE WHEN $2 = 'pet' THEN coalesce(pet_since, $3) ELSE NULL END, drift_score = $4, open_findings = $5, recount_at = $6 WHERE id = $1`,
    [hostId, c.status, now.toISOString(), c.score, c.open, c.recountAt],
  );
  if (before !== null) await noteStatus(q, hostId, before, c.status, now, why);
  return { before: before ?? 'stale', after: c.status };
}

/**
 * What counts, for each host at its own `now`: open, not waived by a rule, not approved in this
 * very state (unexpired at `now`). Several hosts in one statement (an ingest batch's round).
 * LATERAL, so each host is an index lookup of its own open findings whatever the planner believes
 * of the table's size: a plain join was planned (generic plan, statistics of a young table) as a
 * hash of every open finding, 24 ms a call once the table had grown. The rows with a null
 * severity say `until`: the first expiry still ahead of the host's approvals (approvals_expiring
 * holds only those with an expiry), before which time alone cannot change the count.
 */
const COUNTED = `SELECT u.host_id, c.severity, c.n, NULL AS until FROM unnest($1::text[], $2::text[]) AS u(host_id, now)
  CROSS JOIN LATERAL (SELECT f.severity, count(*) AS n FROM findings f
    WHERE f.host_id = u.host_id AND f.resolved_at IS NULL AND f.waived = 0
      AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.finding_id = f.id AND a.identity = f.identity AND a.reopened_at IS NULL
                      AND (a.expires_at IS NULL OR a.expires_at > u.now))
    GROUP BY f.severity) c
  UNION ALL
  SELECT u.host_id, NULL, NULL, e.until FROM unnest($1::text[], $2::text[]) AS u(host_id, now)
  CROSS JOIN LATERAL (SELECT min(a.expires_at) AS until FROM approvals a
    WHERE a.host_id = u.host_id AND a.reopened_at IS NULL AND a.expires_at IS NOT NULL AND a.expires_at > u.now) e
  WHERE e.until IS NOT NULL`;

/** The counts of distinct hosts, in the order asked. */
export async function countHosts(q: Sql, hosts: ReadonlyArray<{ hostId: string; now: Date }>): Promise<PgHostCount[]> {
  if (hosts.length === 0) return [];
  const rows = await q.rows<{ host_id: string; severity: string | null; n: number | null; until: string | null }>(COUNTED, [
    hosts.map((h) => h.hostId),
    hosts.map((h) => h.now.toISOString()),
  ]);
  const by = new Map<string, { severity: string; n: number }[]>();
  const until = new Map<string, string>();
  for (const r of rows) {
    const first = until.get(r.host_id);
    if (r.until !== null && (first === undefined || r.until < first)) until.set(r.host_id, r.until);
    if (r.severity === null) continue;
    const row = { severity: r.severity, n: r.n ?? 0 };
    const list = by.get(r.host_id);
    if (list === undefined) by.set(r.host_id, [row]);
    else list.push(row);
  }
  return hosts.map((h) => ({ ...hostCountOf(by.get(h.hostId) ?? []), recountAt: until.get(h.hostId) ?? null }));
}

/** noteStatus for several hosts in one statement, in the order given. */
export async function noteStatuses(q: Sql, changes: ReadonlyArray<{ hostId: string; before: string | null; after: string; now: Date }>, why: StatusWhy): Promise<void> {
  const changed = changes.filter((c) => c.before !== c.after);
  if (changed.length === 0) return;
  await q.run(
    `INSERT INTO host_status_changes (host_id, from_status, to_status, at, cause, actor)
     SELECT u.host_id, u.from_status, u.to_status, u.at, $5, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS u(host_id, from_status, to_status, at, n) ORDER BY u.n`,
    [changed.map((c) => c.hostId), changed.map((c) => c.before), changed.map((c) => c.after), changed.map((c) => c.now.toISOString()), why.cause, why.actor],
  );
}
