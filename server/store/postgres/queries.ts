// What the API reads, on PostgreSQL (see ../queries.ts; the row mappings are shared).
import type { ChangeSetDetail, HostDetail, ImageSummary } from '../../../shared/api.js';
import { SEVERITIES } from '../../../shared/findings.js';
import { effectiveStatus } from '../../classify.js';
import { WITH_APPROVAL_COLUMNS, describeChangeSet, fleetSummaryOf, hostDetail, hostFinding, hostSummary, openFindingsPageSql, statusChange, withApprovalJoins } from '../queries.js';
import type { ChangeSetRow, FindingRow, HostRow } from '../queries.js';
import { STORED_PETS_SQL, cohortsSql, fleetCountSql, fleetHostsSql, petDeltasSql, statusCountsSql } from '../fleet-query.js';
import { HOST_AUDIT_WHERE, auditEntry, hostAuditRange } from '../triage.js';
import type { CohortRow, Queries } from '../types.js';
import type { PgDatabase, Sql } from './db.js';
import { countHost } from './host-status.js';
import { withHeartbeats } from './liveness.js';

type ChangeSetFindingRow = Parameters<typeof describeChangeSet>[1][number];

// Each finding with the approval of its current state that decides its triage (see ../queries.ts).
const WITH_APPROVAL = `SELECT f.*, ${WITH_APPROVAL_COLUMNS} FROM findings f ${withApprovalJoins('$2')} WHERE f.host_id = $1`;
const OPEN_FINDINGS_PAGE = openFindingsPageSql({ hostId: '$1', now: '$2', limit: '$3', offset: '$4' });
const FINDINGS = {
  open: `${WITH_APPROVAL} AND f.resolved_at IS NULL ORDER BY f.id`,
  resolved: `${WITH_APPROVAL} AND f.resolved_at IS NOT NULL ORDER BY f.id`,
  all: `${WITH_APPROVAL} ORDER BY f.id`,
};

/** The latest row of each finding a change set explains (open or since resolved); NULLS FIRST as SQLite sorts. */
const changeSetFindings = (q: Sql, hostId: string, id: string): Promise<ChangeSetFindingRow[]> =>
  q.rows<ChangeSetFindingRow>(
    `SELECT kind, ecosystem, name, path, detail, resolved_at FROM findings
     WHERE id IN (SELECT max(id) FROM findings WHERE host_id = $1 AND change_set = $2 GROUP BY key) ORDER BY kind, name NULLS FIRST, path NULLS FIRST`,
    [hostId, id],
  );

const hostExists = async (q: Sql, id: string): Promise<boolean> => (await q.row('SELECT 1 AS one FROM hosts WHERE id = $1', [id])) !== undefined;

export function createPgQueries(db: PgDatabase, staleAfterMs: number): Queries {
  const shared = async (): Promise<Set<string>> => new Set((await db.rows<{ hostname: string }>('SELECT hostname FROM hosts GROUP BY hostname HAVING count(*) > 1')).map((r) => r.hostname));
  return {
    async listHosts(query, now) {
      // Containers are children of their host (parent_id): listed under it, not among the hosts.
      const rows = await withHeartbeats(
        db,
        query.image !== undefined
          ? await db.rows<HostRow>('SELECT * FROM hosts WHERE image_name = $1 AND parent_id IS NULL ORDER BY hostname, id', [query.image])
          : await db.rows<HostRow>('SELECT * FROM hosts WHERE parent_id IS NULL ORDER BY hostname, id'),
      );
      const names = await shared();
      const hosts = rows.map((r) => hostSummary(r, now, names, staleAfterMs));
      return query.status === undefined ? hosts : hosts.filter((h) => h.status === query.status);
    },
    // One snapshot (REPEATABLE READ): the row, its counts and its report count agree.
    getHost(id, now) {
      return db.tx(async (q): Promise<Omit<HostDetail, 'connected'> | null> => {
        await q.run('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const stored = await q.row<HostRow>('SELECT * FROM hosts WHERE id = $1', [id]);
        if (stored === undefined) return null;
        const [row] = (await withHeartbeats(q, [stored])) as [HostRow];
        const count = await countHost(q, id, now);
        const same = (await q.row<{ n: number }>('SELECT count(*) AS n FROM hosts WHERE hostname = $1', [row.hostname]))?.n ?? 0;
        const reports = (await q.row<{ n: number }>('SELECT count(*) AS n FROM reports WHERE host_id = $1', [id]))?.n ?? 0;
        return hostDetail(row, count, same > 1, reports, now, staleAfterMs);
      });
    },
    async listFindings(hostId, query, now) {
      if (!(await hostExists(db, hostId))) return null;
      return (await db.rows<FindingRow>(FINDINGS[query.state], [hostId, now.toISOString()])).map((r) => hostFinding(r, now));
    },
    async listChangeSets(hostId) {
      if (!(await hostExists(db, hostId))) return null;
      const sets = await db.rows<ChangeSetRow>('SELECT * FROM change_sets WHERE host_id = $1 ORDER BY coalesce(started_at, first_seen), id', [hostId]);
      const out = [];
      for (const cs of sets) {
        const { paths, ...rest } = describeChangeSet(cs, await changeSetFindings(db, hostId, cs.id));
        out.push({ ...rest, paths: paths.length });
      }
      return out;
    },
    async getChangeSet(hostId, id): Promise<ChangeSetDetail | null> {
      const cs = await db.row<ChangeSetRow>('SELECT * FROM change_sets WHERE host_id = $1 AND id = $2', [hostId, id]);
      return cs === undefined ? null : describeChangeSet(cs, await changeSetFindings(db, hostId, id));
    },
    listImages: () =>
      db.rows<ImageSummary & { hosts: number }>(
        `SELECT i.name, i.version, i.source, i.first_seen AS "firstSeen", i.last_seen AS "lastSeen",
           (SELECT count(*) FROM hosts h WHERE h.image_name = i.name AND h.image_version = i.version AND h.parent_id IS NULL) AS hosts,
           i.packages, i.files
         FROM images i ORDER BY i.name, i.version`,
      ),
    listReports: (hostId) =>
      db.rows('SELECT seq, hash, prev_hash AS "prevHash", kind, received_at AS "receivedAt" FROM reports WHERE host_id = $1 ORDER BY id', [hostId]),
    async worstSeverities(now) {
      // The same findings host-status.ts counts, ranked critical first.
      const rows = await db.rows<{ host_id: string; rank: number }>(
        `SELECT f.host_id, min(CASE f.severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 WHEN 'low' THEN 3 ELSE 4 END) AS rank
         FROM findings f WHERE f.resolved_at IS NULL AND f.waived = 0
           AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.finding_id = f.id AND a.identity = f.identity AND a.reopened_at IS NULL
                           AND (a.expires_at IS NULL OR a.expires_at > $1))
         GROUP BY f.host_id ORDER BY f.host_id`,
        [now.toISOString()],
      );
      const out: Record<string, string> = {};
      for (const r of rows) out[r.host_id] = SEVERITIES[r.rank] ?? 'info';
      return out;
    },
    async fleetHosts(query, at, now) {
      const { sql, params } = fleetHostsSql(query, at, now, staleAfterMs, 'postgres');
      const rows = await withHeartbeats(db, await db.rows<HostRow>(sql, params));
      const names = rows.length === 0 ? [] : await db.rows<{ hostname: string }>('SELECT hostname FROM hosts WHERE hostname = ANY($1::text[]) GROUP BY hostname HAVING count(*) > 1', [[...new Set(rows.map((r) => r.hostname))]]);
      const shared = new Set(names.map((r) => r.hostname));
      return rows.map((r) => hostSummary(r, now, shared, staleAfterMs));
    },
    async fleetCount(query, now) {
      const { sql, params } = fleetCountSql(query, now, staleAfterMs, 'postgres');
      return (await db.row<{ n: number }>(sql, params))!.n;
    },
    fleetSummary(now, limit) {
      const counts = statusCountsSql(now, staleAfterMs, 'postgres');
      const cohorts = cohortsSql(now, staleAfterMs, limit, 'postgres');
      return db.tx(async (q) => {
        await q.run('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
        return fleetSummaryOf(await q.rows<{ status: string; n: number }>(counts.sql, counts.params), await q.rows<CohortRow>(cohorts.sql, cohorts.params));
      });
    },
    petChanges(since) {
      const deltas = petDeltasSql(since.toISOString().slice(0, 10), 'postgres');
      return db.tx(async (q) => {
        await q.run('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
        return { petsNow: (await q.row<{ n: number }>(STORED_PETS_SQL))!.n, deltas: await q.rows<{ day: string; delta: number }>(deltas.sql, deltas.params) };
      });
    },
    async statusHistory(hostId, limit) {
      if (!(await hostExists(db, hostId))) return null;
      return (await db.rows<Parameters<typeof statusChange>[0]>('SELECT * FROM host_status_changes WHERE host_id = $1 ORDER BY id DESC LIMIT $2', [hostId, limit])).reverse().map(statusChange);
    },
    pageOpenFindings(hostId, at, now) {
      return db.tx(async (q) => {
        await q.run('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
        if (!(await hostExists(q, hostId))) return null;
        const rows = await q.rows<FindingRow>(OPEN_FINDINGS_PAGE, [hostId, now.toISOString(), at.limit, at.offset]);
        const total = (await q.row<{ n: number }>('SELECT count(*) AS n FROM findings WHERE host_id = $1 AND resolved_at IS NULL', [hostId]))!.n;
        return { findings: rows.map((r) => hostFinding(r, now)), total };
      });
    },
    async hostAudit(hostId, limit) {
      const rows = await db.rows<Parameters<typeof auditEntry>[0]>(`SELECT * FROM audit_log WHERE ${HOST_AUDIT_WHERE('$1', '$2', '$3')} ORDER BY id DESC LIMIT $4`, [...hostAuditRange(hostId), limit]);
      return rows.reverse().map(auditEntry);
    },
    async countHosts(now) {
      const out = { cattle: 0, pet: 0, stale: 0, enrolled: 0 };
      for (const row of await db.rows<Pick<HostRow, 'status' | 'last_report_at'>>('SELECT status, last_report_at FROM hosts WHERE parent_id IS NULL')) {
        out[effectiveStatus(row.status, row.last_report_at, now, staleAfterMs)]++;
      }
      return out;
    },
  };
}
