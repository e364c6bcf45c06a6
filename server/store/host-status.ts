// A host's status from its open findings: what counts is open, not waived by a rule and not
// approved (an approval of this very state of the change, not reopened, not expired at `now`).
import type { Database as Db } from 'better-sqlite3';
import { SEVERITIES } from '../../shared/findings.js';
import { emptyCounts } from '../../shared/report.js';
import type { SeverityCounts } from '../../shared/report.js';
import { driftScore, openAboveInfo, statusOf } from '../classify.js';
import type { StatusWhy } from './types.js';

/** A report's own change: the agent's, no one else's. */
export const BY_REPORT: StatusWhy = { cause: 'report', actor: null };

export interface HostCount {
  counts: SeverityCounts;
  status: 'cattle' | 'pet';
  score: number;
  open: number;
}

export interface HostStatusStore {
  count(hostId: string, now: Date): HostCount;
  /** Counts again and stores the result (a change goes into the history, `why`); returns the status before and after. */
  refresh(hostId: string, now: Date, why: StatusWhy): { before: string; after: 'cattle' | 'pet' };
  /** The stored status now; null: no such host. */
  statusOf(hostId: string): string | null;
  /** Notes a change of the stored status in the history (nothing when it did not change), in the caller's transaction. */
  note(hostId: string, before: string | null, after: string, now: Date, why: StatusWhy): void;
}

/** A host's count from its open findings counted by severity (COUNTED_FINDINGS). Pure. */
export function hostCountOf(rows: Iterable<{ severity: string; n: number }>): HostCount {
  const counts = emptyCounts();
  for (const row of rows) {
    if ((SEVERITIES as readonly string[]).includes(row.severity)) counts[row.severity as keyof typeof counts] = row.n;
  }
  const open = openAboveInfo(counts);
  return { counts, status: statusOf(open), score: driftScore(counts), open };
}

/**
 * A stored count after a report that only added findings: a new row has no approval (they name
 * a finding's id), so each one not waived counts, and nothing else changed. Pure.
 */
export function countAfterAdding(stored: { score: number; open: number }, added: Iterable<{ severity: string; n: number }>): Omit<HostCount, 'counts'> {
  const more = hostCountOf(added);
  const open = stored.open + more.open;
  return { status: statusOf(open), score: stored.score + more.score, open };
}

export function createHostStatus(db: Db): HostStatusStore {
  const counted = db.prepare<{ hostId: string; now: string }, { severity: string; n: number }>(
    `SELECT severity, count(*) AS n FROM findings f
     WHERE f.host_id = @hostId AND f.resolved_at IS NULL AND f.waived = 0
       AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.finding_id = f.id AND a.identity = f.identity AND a.reopened_at IS NULL
                       AND (a.expires_at IS NULL OR a.expires_at > @now))
     GROUP BY severity`,
  );
  const status = db.prepare<[string], { status: string }>('SELECT status FROM hosts WHERE id = ?');
  const update = db.prepare(
    `UPDATE hosts SET status = @status, pet_since = CASE WHEN @status = 'pet' THEN coalesce(pet_since, @now) ELSE NULL END,
       drift_score = @score, open_findings = @open WHERE id = @hostId`,
  );
  const insertChange = db.prepare('INSERT INTO host_status_changes (host_id, from_status, to_status, at, cause, actor) VALUES (?, ?, ?, ?, ?, ?)');
  const count = (hostId: string, now: Date): HostCount => hostCountOf(counted.all({ hostId, now: now.toISOString() }));
  const statusOf = (hostId: string): string | null => status.get(hostId)?.status ?? null;
  const note: HostStatusStore['note'] = (hostId, before, after, now, why) => {
    if (before !== after) insertChange.run(hostId, before, after, now.toISOString(), why.cause, why.actor);
  };
  return {
    count,
    statusOf,
    note,
    refresh(hostId, now, why) {
      const before = statusOf(hostId);
      const c = count(hostId, now);
      update.run({ hostId, status: c.status, now: now.toISOString(), score: c.score, open: c.open });
      if (before !== null) note(hostId, before, c.status, now, why);
      return { before: before ?? 'stale', after: c.status };
    },
  };
}
