// The rules applied again to findings already open: after a new rule set (every host) or a change
// of one host's labels, what was waived, lowered or auto-approved may no longer be, and back.
import type { Database as Db } from 'better-sqlite3';
import type { Finding } from '../../shared/report.js';
import { attentionSeverity, needsAttention } from '../rules.js';
import type { EvaluatedFinding } from '../rules.js';
import type { Alerting } from './alerting.js';

/** How a decided finding is stored: the severity in force and whether a rule waived it. Pure. */
export function storedVerdict(e: EvaluatedFinding): { severity: string; waived: boolean } {
  return {
    // The rules' severity, or the worst nested one still needing attention.
    severity: attentionSeverity(e) ?? e.decision.severity,
    // Waived: a rule suppressed or auto-approved it and nothing nested under it still needs anyone.
    waived: (e.decision.suppressed !== undefined || e.decision.autoApproved !== undefined) && !needsAttention(e, 'low'),
  };
}

/** Decides the open scan findings of one host (or of all: null) again; returns the hosts touched. */
export type Redecide = (hostId: string | null, now: Date) => Set<string>;

export function createRedecide(db: Db, alerting: Alerting): Redecide {
  const open = db.prepare<{ hostId: string | null }, { id: number; host_id: string; detail: string; labels: string; image_name: string | null; hostname: string; ticket: string | null }>(
    `SELECT f.id, f.host_id, f.detail, f.ticket, h.labels, h.image_name, h.hostname FROM findings f JOIN hosts h ON h.id = f.host_id
     WHERE f.resolved_at IS NULL AND f.source = 'scan' AND (@hostId IS NULL OR f.host_id = @hostId)`,
  );
  const update = db.prepare('UPDATE findings SET severity = ?, decision = ?, waived = ? WHERE id = ?');
  return (hostId, now) => {
    const hosts = new Set<string>();
    for (const row of open.all({ hostId })) {
      const host = { id: row.host_id, hostname: row.hostname, labels: JSON.parse(row.labels) as Record<string, string> };
      const [e] = alerting.evaluate([JSON.parse(row.detail) as Finding], host, { name: row.image_name ?? '' }, now, row.ticket ?? undefined);
      const v = storedVerdict(e!);
      update.run(v.severity, JSON.stringify(e!.decision), v.waived ? 1 : 0, row.id);
      hosts.add(row.host_id);
    }
    return hosts;
  };
}
