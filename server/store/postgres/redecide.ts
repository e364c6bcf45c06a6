// The rules applied again to findings already open (see ../redecide.ts), on PostgreSQL.
import type { Finding } from '../../../shared/report.js';
import { storedVerdict } from '../redecide.js';
import type { PgAlerting } from './alerting.js';
import type { Sql } from './db.js';

/** Decides the open scan findings of one host (or of all: null) again; returns the hosts touched. */
export async function redecidePg(q: Sql, alerting: PgAlerting, hostId: string | null, now: Date): Promise<Set<string>> {
  const rows = await q.rows<{ id: number; host_id: string; detail: string; labels: string; image_name: string | null; hostname: string; ticket: string | null }>(
    `SELECT f.id, f.host_id, f.detail, f.ticket, h.labels, h.image_name, h.hostname FROM findings f JOIN hosts h ON h.id = f.host_id
     WHERE f.resolved_at IS NULL AND f.source = 'scan' AND ($1::text IS NULL OR f.host_id = $1) ORDER BY f.id`,
    [hostId],
  );
  const rules = await alerting.rules(q);
  const hosts = new Set<string>();
  const ids: number[] = [];
  const severities: string[] = [];
  const decisions: string[] = [];
  const waived: number[] = [];
  for (const row of rows) {
    const host = { id: row.host_id, hostname: row.hostname, labels: JSON.parse(row.labels) as Record<string, string> };
    const [e] = alerting.evaluate(rules, [JSON.parse(row.detail) as Finding], host, { name: row.image_name ?? '' }, now, row.ticket ?? undefined);
    const v = storedVerdict(e!);
    ids.push(row.id);
    severities.push(v.severity);
    decisions.push(JSON.stringify(e!.decision));
    waived.push(v.waived ? 1 : 0);
    hosts.add(row.host_id);
  }
  // One statement for every finding decided again.
  if (ids.length > 0) {
    await q.run(
      `UPDATE findings f SET severity = u.severity, decision = u.decision, waived = u.waived
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[]) AS u(id, severity, decision, waived) WHERE f.id = u.id`,
      [ids, severities, decisions, waived],
    );
  }
  return hosts;
}
