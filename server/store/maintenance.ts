// History pruning: reports and resolved findings older than the retention go; the last report of
// every host stays (the next report's chain names it) and so does anything an approval or the
// audit log points at.
import type { Database as Db } from 'better-sqlite3';
import type { Synchronous } from './async-adapter.js';
import type { Maintenance } from './types.js';

export function createMaintenance(db: Db): Synchronous<Maintenance> {
  const reports = db.prepare(
    `DELETE FROM reports WHERE received_at < ? AND id NOT IN (SELECT max(id) FROM reports GROUP BY host_id)`,
  );
  const findings = db.prepare(
    `DELETE FROM findings WHERE resolved_at IS NOT NULL AND resolved_at < ?
       AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.finding_id = findings.id)`,
  );
  const prune = db.transaction((before: string) => ({ reports: reports.run(before).changes, findings: findings.run(before).changes }));
  return { prune: (before) => prune(before.toISOString()) };
}
