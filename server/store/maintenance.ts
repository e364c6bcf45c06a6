// History pruning: reports, resolved findings and settled alert deliveries older than the retention
// go; the last report of every host stays (the next report's chain names it) and so does anything
// an approval or the audit log points at. A delivered trigger with no resolve yet stays however
// old: when its finding resolves, the resolve must still find the sinks that paged (resolveTargets).
import type { Database as Db } from 'better-sqlite3';
import type { Synchronous } from './async-adapter.js';
import type { Maintenance } from './types.js';

/**
 * The alert deliveries the retention may drop (`$1` the cutoff): settled ones (delivered, given up,
 * withdrawn, or planned for no sink) created before it, except a delivered trigger whose resolve
 * was never queued, since its incident may still be open at the sink.
 */
export const SETTLED_DELIVERIES = `SELECT d.id FROM alert_deliveries d
  WHERE d.created_at < $1 AND d.state IN ('delivered', 'gave-up', 'withdrawn', 'planned')
    AND NOT (d.action = 'trigger' AND d.state = 'delivered'
             AND NOT EXISTS (SELECT 1 FROM alert_deliveries r WHERE r.dedup_key = d.dedup_key AND r.action = 'resolve'))`;

export function createMaintenance(db: Db): Synchronous<Maintenance> {
  const reports = db.prepare(
    `DELETE FROM reports WHERE received_at < ? AND id NOT IN (SELECT max(id) FROM reports GROUP BY host_id)`,
  );
  const findings = db.prepare(
    `DELETE FROM findings WHERE resolved_at IS NOT NULL AND resolved_at < ?
       AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.finding_id = findings.id)`,
  );
  // Attempts first: they point at their delivery.
  const settled = SETTLED_DELIVERIES.replace('$1', '?');
  const attempts = db.prepare(`DELETE FROM alert_attempts WHERE delivery_id IN (${settled})`);
  const deliveries = db.prepare(`DELETE FROM alert_deliveries WHERE id IN (${settled})`);
  const prune = db.transaction((before: string) => {
    const counts = { reports: reports.run(before).changes, findings: findings.run(before).changes };
    attempts.run(before);
    return { ...counts, alerts: deliveries.run(before).changes };
  });
  return { prune: (before) => prune(before.toISOString()) };
}
