// History pruning on PostgreSQL (see ../maintenance.ts): the last report of every host stays, so
// does any finding an approval points at, and so does a delivered trigger not yet resolved.
import type { Maintenance } from '../types.js';
import type { PgDatabase } from './db.js';
import { SETTLED_DELIVERIES } from '../maintenance.js';

export function createPgMaintenance(db: PgDatabase): Maintenance {
  return {
    prune: (before) =>
      db.tx(async (q) => {
        const cutoff = [before.toISOString()];
        const reports = await q.run(`DELETE FROM reports WHERE received_at < $1 AND id NOT IN (SELECT max(id) FROM reports GROUP BY host_id)`, cutoff);
        const findings = await q.run(
          `DELETE FROM findings WHERE resolved_at IS NOT NULL AND resolved_at < $1 AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.finding_id = findings.id)`,
          cutoff,
        );
        // Attempts first: they point at their delivery.
        await q.run(`DELETE FROM alert_attempts WHERE delivery_id IN (${SETTLED_DELIVERIES})`, cutoff);
        return { reports, findings, alerts: await q.run(`DELETE FROM alert_deliveries WHERE id IN (${SETTLED_DELIVERIES})`, cutoff) };
      }),
  };
}
