// History pruning on PostgreSQL (see ../maintenance.ts): the last report of every host stays, and
// so does any finding an approval points at.
import type { Maintenance } from '../types.js';
import type { PgDatabase } from './db.js';

export function createPgMaintenance(db: PgDatabase): Maintenance {
  return {
    prune: (before) =>
      db.tx(async (q) => ({
        reports: await q.run(`DELETE FROM reports WHERE received_at < $1 AND id NOT IN (SELECT max(id) FROM reports GROUP BY host_id)`, [before.toISOString()]),
        findings: await q.run(
          `DELETE FROM findings WHERE resolved_at IS NOT NULL AND resolved_at < $1 AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.finding_id = findings.id)`,
          [before.toISOString()],
        ),
      })),
  };
}
