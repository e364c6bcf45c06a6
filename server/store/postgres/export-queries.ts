// The compliance export's reads on PostgreSQL (see ../export-queries.ts): pages keyed by id.
import { exportApproval, exportChangeSet, exportFinding, exportHost, exportManifest, exportReport } from '../export-queries.js';
import type { ApprovalDbRow, ChangeSetDbRow, FindingDbRow, HostDbRow, ReportDbRow } from '../export-queries.js';
import type { ExportQueries } from '../types.js';
import type { PgDatabase } from './db.js';

const REPORT_COLUMNS = `id, seq, kind, scanned_at, received_at,
  (body::json -> 'watch' ->> 'state') AS watch_state, (body::json -> 'watch' ->> 'reason') AS watch_reason`;

export function createPgExportQueries(db: PgDatabase): ExportQueries {
  return {
    async pageHosts({ scope, after, limit }) {
      const value = scope.kind === 'image' ? scope.name : scope.kind === 'host' ? scope.id : scope.kind === 'label' ? scope.value : null;
      const rows = await db.rows<HostDbRow>(
        `SELECT * FROM hosts WHERE parent_id IS NULL AND id > $1
           AND CASE $2::text WHEN 'all' THEN true
                             WHEN 'image' THEN image_name = $3
                             WHEN 'host' THEN id = $3
                             WHEN 'label' THEN (labels::json ->> $4::text) = $3 END
         ORDER BY id LIMIT $5`,
        [after ?? '', scope.kind, value, scope.kind === 'label' ? scope.key : null, limit],
      );
      return rows.map(exportHost);
    },
    pageReports: async ({ hostId, from, to, after, limit }) =>
      (
        await db.rows<ReportDbRow>(`SELECT ${REPORT_COLUMNS} FROM reports WHERE host_id = $1 AND id > $2 AND received_at >= $3 AND received_at <= $4 ORDER BY id LIMIT $5`, [
          hostId,
          after ?? 0,
          from.toISOString(),
          to.toISOString(),
          limit,
        ])
      ).map(exportReport),
    async reportBefore({ hostId, before, kind }) {
      const r = await db.row<ReportDbRow>(`SELECT ${REPORT_COLUMNS} FROM reports WHERE host_id = $1 AND received_at < $2 AND ($3::text IS NULL OR kind = $3) ORDER BY id DESC LIMIT 1`, [
        hostId,
        before.toISOString(),
        kind ?? null,
      ]);
      return r === undefined ? null : exportReport(r);
    },
    pageFindings: async ({ hostId, from, to, after, limit }) =>
      (
        await db.rows<FindingDbRow>(
          `SELECT id, host_id, kind, severity, source, ecosystem, name, path, first_seen, last_seen, resolved_at, waived, decision, ticket, change_set, identity, detail
           FROM findings WHERE host_id = $1 AND id > $2 AND first_seen <= $3 AND (resolved_at IS NULL OR resolved_at >= $4)
           ORDER BY id LIMIT $5`,
          [hostId, after ?? 0, to.toISOString(), from.toISOString(), limit],
        )
      ).map(exportFinding),
    async approvalsOf(findingIds) {
      const out = new Map<number, ReturnType<typeof exportApproval>[]>(findingIds.map((id) => [id, []]));
      // A re-baseline writes its approvals and its baseline row in one transaction, at one instant.
      const rows = await db.rows<ApprovalDbRow>(
        `SELECT a.id, a.finding_id, a.identity, a.kind, a.reason, a.ticket, a.expires_at, a.created_at, a.created_by, t.name AS created_by_name,
           a.reopened_at, a.reopened_by, a.expired_at,
           CASE a.kind WHEN 'rebaseline' THEN (SELECT b.version FROM host_baselines b WHERE b.host_id = a.host_id AND b.created_at = a.created_at AND b.created_by = a.created_by ORDER BY b.version DESC LIMIT 1) END AS baseline_version
         FROM approvals a LEFT JOIN api_tokens t ON t.id = a.created_by
         WHERE a.finding_id = ANY($1::bigint[]) ORDER BY a.id`,
        [findingIds],
      );
      for (const r of rows) out.get(r.finding_id)?.push(exportApproval(r));
      return out;
    },
    pageChangeSets: async ({ hostId, from, to, after, limit }) =>
      (
        await db.rows<ChangeSetDbRow>(`SELECT * FROM change_sets WHERE host_id = $1 AND id > $2 AND first_seen <= $3 AND last_seen >= $4 ORDER BY id LIMIT $5`, [
          hostId,
          after ?? '',
          to.toISOString(),
          from.toISOString(),
          limit,
        ])
      ).map(exportChangeSet),
    async manifest(query) {
      if ('image' in query) {
        const r = await db.row<{ manifest: string | null; packages: number | null; files: number | null }>('SELECT manifest, packages, files FROM images WHERE name = $1 AND version = $2', [
          query.image.name,
          query.image.version,
        ]);
        return r?.manifest == null ? null : exportManifest(r.manifest, query.image, null, r.packages, r.files);
      }
      const r = await db.row<{ manifest: string | null; packages: number | null; files: number | null; image_name: string | null; image_version: string | null }>(
        `SELECT manifest, packages, files, image_name, image_version FROM host_baselines WHERE host_id = $1 AND version = $2 AND state = 'ready'`,
        [query.hostId, query.baselineVersion],
      );
      if (r?.manifest == null) return null;
      return exportManifest(r.manifest, { name: r.image_name ?? '', version: r.image_version ?? '' }, query.baselineVersion, r.packages, r.files);
    },
  };
}
