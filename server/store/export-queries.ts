// The compliance export's reads over SQLite: pages keyed by id, so an export of any size holds
// one page at a time. Each statement answers one page of one host.
import { createHash } from 'node:crypto';
import type { Database as Db } from 'better-sqlite3';
import type { HostStatusName } from '../../shared/api.js';
import type { Synchronous } from './async-adapter.js';
import type { ChangeSetRow } from './queries.js';
import type { ExportApprovalRow, ExportChangeSetRow, ExportFindingRow, ExportHostRow, ExportManifestRow, ExportQueries, ExportReportRow } from './types.js';

export interface HostDbRow {
  id: string;
  hostname: string;
  machine_id: string | null;
  enrolled_at: string;
  revoked_at: string | null;
  image_name: string | null;
  image_version: string | null;
  baseline_version: number | null;
  labels: string;
  status: HostStatusName;
  last_report_at: string | null;
  watch_state: 'ok' | 'degraded' | null;
  watch_reason: string | null;
}

export interface ReportDbRow {
  id: number;
  seq: number;
  kind: 'full' | 'event';
  scanned_at: string;
  received_at: string;
  watch_state: 'ok' | 'degraded' | null;
  watch_reason: string | null;
}

export interface FindingDbRow {
  id: number;
  host_id: string;
  kind: string;
  severity: string;
  source: 'scan' | 'server';
  ecosystem: string | null;
  name: string | null;
  path: string | null;
  first_seen: string;
  last_seen: string;
  resolved_at: string | null;
  waived: number;
  decision: string | null;
  ticket: string | null;
  change_set: string | null;
  identity: string | null;
  detail: string;
}

export interface ApprovalDbRow {
  id: number;
  finding_id: number;
  identity: string;
  kind: ExportApprovalRow['kind'];
  reason: string;
  ticket: string | null;
  expires_at: string | null;
  created_at: string;
  created_by: string;
  created_by_name: string | null;
  reopened_at: string | null;
  reopened_by: string | null;
  expired_at: string | null;
  baseline_version: number | null;
}

/** A change set row with its host id, as the export pages it. */
export interface ChangeSetDbRow extends ChangeSetRow {
  host_id: string;
}

/** The export rows as the port returns them: pure mappings every backend shares. */
export const exportReport = (r: ReportDbRow): ExportReportRow => ({
  id: r.id,
  seq: r.seq,
  kind: r.kind,
  scannedAt: r.scanned_at,
  receivedAt: r.received_at,
  watch: r.watch_state === null ? null : { state: r.watch_state, reason: r.watch_reason },
});

export const exportManifest = (text: string, image: { name: string; version: string }, baselineVersion: number | null, packages: number | null, files: number | null): ExportManifestRow => {
  const p = (JSON.parse(text) as { policy?: NonNullable<ExportManifestRow['policy']> }).policy;
  const policy = p === undefined ? null : { tracked: p.tracked, ignored: p.ignored, mutable: p.mutable };
  return { image, baselineVersion, sha256: createHash('sha256').update(text).digest('hex'), policy, packages, files };
};

export const exportHost = (r: HostDbRow): ExportHostRow => ({
  id: r.id,
  hostname: r.hostname,
  machineId: r.machine_id,
  enrolledAt: r.enrolled_at,
  revokedAt: r.revoked_at,
  image: r.image_name !== null && r.image_version !== null ? { name: r.image_name, version: r.image_version } : null,
  baselineVersion: r.baseline_version,
  labels: JSON.parse(r.labels) as Record<string, string>,
  status: r.status,
  lastReportAt: r.last_report_at,
  watch: r.watch_state === null ? null : { state: r.watch_state, reason: r.watch_reason },
});

export const exportFinding = (r: FindingDbRow): ExportFindingRow => ({
  id: r.id,
  hostId: r.host_id,
  kind: r.kind,
  severity: r.severity,
  source: r.source,
  ecosystem: r.ecosystem,
  name: r.name,
  path: r.path,
  firstSeen: r.first_seen,
  lastSeen: r.last_seen,
  resolvedAt: r.resolved_at,
  waived: r.waived === 1,
  decision: r.decision === null ? null : (JSON.parse(r.decision) as unknown),
  ticket: r.ticket,
  changeSet: r.change_set,
  identity: r.identity,
  detail: JSON.parse(r.detail) as Record<string, unknown>,
});

export const exportChangeSet = (r: ChangeSetDbRow): ExportChangeSetRow => ({
  hostId: r.host_id,
  id: r.id,
  tool: r.tool,
  command: r.command,
  user: r.user_name,
  start: r.started_at,
  end: r.ended_at,
  packages: r.packages,
  ticket: r.ticket,
  firstSeen: r.first_seen,
  lastSeen: r.last_seen,
});

export const exportApproval = (r: ApprovalDbRow): ExportApprovalRow => ({
  id: r.id,
  findingId: r.finding_id,
  identity: r.identity,
  kind: r.kind,
  reason: r.reason,
  ticket: r.ticket,
  expiresAt: r.expires_at,
  createdAt: r.created_at,
  createdBy: r.created_by,
  createdByName: r.created_by_name,
  reopenedAt: r.reopened_at,
  reopenedBy: r.reopened_by,
  expiredAt: r.expired_at,
  baselineVersion: r.baseline_version,
});

const REPORT_COLUMNS = `id, seq, kind, scanned_at, received_at,
  json_extract(body, '$.watch.state') AS watch_state, json_extract(body, '$.watch.reason') AS watch_reason`;

export function createExportQueries(db: Db): Synchronous<ExportQueries> {
  const hosts = db.prepare<{ kind: string; value: string | null; path: string | null; after: string; limit: number }, HostDbRow>(
    `SELECT * FROM hosts WHERE parent_id IS NULL AND id > @after
       AND CASE @kind WHEN 'all' THEN 1
                      WHEN 'image' THEN image_name = @value
                      WHEN 'host' THEN id = @value
                      WHEN 'label' THEN json_extract(labels, @path) = @value END
     ORDER BY id LIMIT @limit`,
  );
  const reports = db.prepare<{ hostId: string; from: string; to: string; after: number; limit: number }, ReportDbRow>(
    `SELECT ${REPORT_COLUMNS} FROM reports WHERE host_id = @hostId AND id > @after AND received_at >= @from AND received_at <= @to ORDER BY id LIMIT @limit`,
  );
  const lastBefore = db.prepare<{ hostId: string; before: string; kind: string | null }, ReportDbRow>(
    `SELECT ${REPORT_COLUMNS} FROM reports WHERE host_id = @hostId AND received_at < @before AND (@kind IS NULL OR kind = @kind) ORDER BY id DESC LIMIT 1`,
  );
  const findings = db.prepare<{ hostId: string; from: string; to: string; after: number; limit: number }, FindingDbRow>(
    `SELECT id, host_id, kind, severity, source, ecosystem, name, path, first_seen, last_seen, resolved_at, waived, decision, ticket, change_set, identity, detail
     FROM findings WHERE host_id = @hostId AND id > @after AND first_seen <= @to AND (resolved_at IS NULL OR resolved_at >= @from)
     ORDER BY id LIMIT @limit`,
  );
  // A re-baseline writes its approvals and its baseline row in one transaction, at one instant.
  const approvals = db.prepare<[string], ApprovalDbRow>(
    `SELECT a.id, a.finding_id, a.identity, a.kind, a.reason, a.ticket, a.expires_at, a.created_at, a.created_by, t.name AS created_by_name,
       a.reopened_at, a.reopened_by, a.expired_at,
       CASE a.kind WHEN 'rebaseline' THEN (SELECT b.version FROM host_baselines b WHERE b.host_id = a.host_id AND b.created_at = a.created_at AND b.created_by = a.created_by ORDER BY b.version DESC LIMIT 1) END AS baseline_version
     FROM approvals a LEFT JOIN api_tokens t ON t.id = a.created_by
     WHERE a.finding_id IN (SELECT value FROM json_each(?)) ORDER BY a.id`,
  );
  const changeSets = db.prepare<{ hostId: string; from: string; to: string; after: string; limit: number }, ChangeSetDbRow>(
    `SELECT * FROM change_sets WHERE host_id = @hostId AND id > @after AND first_seen <= @to AND last_seen >= @from ORDER BY id LIMIT @limit`,
  );
  const imageManifest = db.prepare<[string, string], { manifest: string | null; packages: number | null; files: number | null }>(
    'SELECT manifest, packages, files FROM images WHERE name = ? AND version = ?',
  );
  const baselineManifest = db.prepare<[string, number], { manifest: string | null; packages: number | null; files: number | null; image_name: string | null; image_version: string | null }>(
    `SELECT manifest, packages, files, image_name, image_version FROM host_baselines WHERE host_id = ? AND version = ? AND state = 'ready'`,
  );


  return {
    pageHosts({ scope, after, limit }) {
      const value = scope.kind === 'image' ? scope.name : scope.kind === 'host' ? scope.id : scope.kind === 'label' ? scope.value : null;
      const path = scope.kind === 'label' ? `$."${scope.key}"` : null;
      return hosts.all({ kind: scope.kind, value, path, after: after ?? '', limit }).map(
        exportHost,
      );
    },
    pageReports: ({ hostId, from, to, after, limit }) => reports.all({ hostId, from: from.toISOString(), to: to.toISOString(), after: after ?? 0, limit }).map(exportReport),
    reportBefore({ hostId, before, kind }) {
      const r = lastBefore.get({ hostId, before: before.toISOString(), kind: kind ?? null });
      return r === undefined ? null : exportReport(r);
    },
    pageFindings: ({ hostId, from, to, after, limit }) =>
      findings.all({ hostId, from: from.toISOString(), to: to.toISOString(), after: after ?? 0, limit }).map(
        exportFinding,
      ),
    approvalsOf(findingIds) {
      const out = new Map<number, ExportApprovalRow[]>(findingIds.map((id) => [id, []]));
      for (const r of approvals.all(JSON.stringify(findingIds))) {
        out.get(r.finding_id)?.push(exportApproval(r));
      }
      return out;
    },
    pageChangeSets: ({ hostId, from, to, after, limit }) =>
      changeSets.all({ hostId, from: from.toISOString(), to: to.toISOString(), after: after ?? '', limit }).map(
        exportChangeSet,
      ),
    manifest(query) {
      if ('image' in query) {
        const r = imageManifest.get(query.image.name, query.image.version);
        return r?.manifest == null ? null : exportManifest(r.manifest, query.image, null, r.packages, r.files);
      }
      const r = baselineManifest.get(query.hostId, query.baselineVersion);
      if (r?.manifest == null) return null;
      return exportManifest(r.manifest, { name: r.image_name ?? '', version: r.image_version ?? '' }, query.baselineVersion, r.packages, r.files);
    },
  };
}
