import type { Database as Db } from 'better-sqlite3';
import type { ChangeSetDetail, HostDetail, HostFinding, HostStatusName, HostSummary, ImageSummary } from '../../shared/api.js';
import type { Finding } from '../../shared/report.js';
import { SEVERITIES } from '../../shared/findings.js';
import { createHostStatus } from './host-status.js';
import type { HostCount } from './host-status.js';
import { effectiveStatus } from '../classify.js';
import { findingTriage } from '../finding-triage.js';
import type { Decision } from '../rules.js';
import type { Synchronous } from './async-adapter.js';
import type { CohortRow, Queries, StatusChange } from './types.js';
import { STORED_PETS_SQL, cohortsSql, fleetCountSql, fleetHostsSql, petDeltasSql, statusCountsSql } from './fleet-query.js';
import { HOST_AUDIT_WHERE, auditEntry, hostAuditRange } from './triage.js';

export interface HostRow {
  id: string;
  hostname: string;
  enrolled_at: string;
  revoked_at: string | null;
  os: string | null;
  agent_version: string | null;
  image_name: string | null;
  image_version: string | null;
  status: HostStatusName;
  machine_id: string | null;
  pet_since: string | null;
  drift_score: number;
  open_findings: number;
  last_seen: string | null;
  last_report_at: string | null;
  last_seq: number;
  outbox_depth: number;
  watch_state: 'ok' | 'degraded' | null;
  watch_reason: string | null;
  labels: string;
  labels_api: string;
  labels_agent: string;
  baseline_version: number | null;
}

export interface FindingRow {
  id: number;
  kind: string;
  severity: string;
  source: 'scan' | 'server';
  ecosystem: string | null;
  name: string | null;
  path: string | null;
  first_seen: string;
  last_seen: string;
  resolved_at: string | null;
  detail: string;
  decision: string | null;
  waived: number;
  a_kind: string | null;
  a_created_by: string;
  a_reason: string;
  a_ticket: string | null;
  a_created_at: string;
  a_expires_at: string | null;
  change_set: string | null;
  cs_tool: string | null;
  cs_command: string | null;
}

export interface ChangeSetRow {
  id: string;
  tool: string;
  command: string | null;
  user_name: string | null;
  started_at: string | null;
  ended_at: string | null;
  packages: number;
  ticket: string | null;
  first_seen: string;
  last_seen: string;
}

/** A change set with the packages and paths of the findings it explains. Pure. */
export function describeChangeSet(cs: ChangeSetRow, rows: ReadonlyArray<{ kind: string; ecosystem: string | null; name: string | null; path: string | null; detail: string; resolved_at: string | null }>): ChangeSetDetail {
  const packages: ChangeSetDetail['packages'] = [];
  const paths = new Set<string>();
  for (const r of rows) {
    const f = JSON.parse(r.detail) as Finding;
    if (r.kind.startsWith('package-')) {
      packages.push({ kind: r.kind, ecosystem: r.ecosystem, name: r.name, before: typeof f.before === 'string' ? f.before : null, after: typeof f.after === 'string' ? f.after : null, resolved: r.resolved_at !== null });
    } else if (r.path !== null) paths.add(r.path);
    for (const c of f.changes ?? []) if (c.path !== undefined) paths.add(c.path);
  }
  return {
    id: cs.id,
    tool: cs.tool,
    command: cs.command,
    user: cs.user_name,
    start: cs.started_at,
    end: cs.ended_at,
    ticket: cs.ticket,
    firstSeen: cs.first_seen,
    packages,
    paths: [...paths].sort(),
  };
}

/** A hostname that other hosts share, with the first digits of what tells this one apart. */
export function distinctName(row: { hostname: string; machine_id: string | null; id: string }): string {
  return `${row.hostname} (${row.machine_id === null ? '' : `machine ${row.machine_id.slice(0, 8)}, `}agent ${row.id.slice(0, 8)})`;
}

/** A host row as the API lists it; `sharedNames`: hostnames other hosts have too. Pure. */
export const hostSummary = (row: HostRow, now: Date, sharedNames: ReadonlySet<string>, staleAfterMs: number): HostSummary => ({
  id: row.id,
  hostname: row.hostname,
  machineId: row.machine_id,
  displayName: sharedNames.has(row.hostname) ? distinctName(row) : row.hostname,
  status: effectiveStatus(row.status, row.last_report_at, now, staleAfterMs),
  image: row.image_name !== null && row.image_version !== null ? { name: row.image_name, version: row.image_version } : null,
  openFindings: row.open_findings,
  driftScore: row.drift_score,
  petSince: row.pet_since,
  lastSeen: row.last_seen,
  lastReportAt: row.last_report_at,
  revoked: row.revoked_at !== null,
  watch: row.watch_state === null ? null : { state: row.watch_state, reason: row.watch_reason },
  labels: JSON.parse(row.labels) as Record<string, string>,
});

/** A host row with its count as the API's host page shows it. `sharedName`: another host has its hostname. Pure. */
export function hostDetail(row: HostRow, count: HostCount, sharedName: boolean, reports: number, now: Date, staleAfterMs: number): Omit<HostDetail, 'connected'> {
  return {
    ...hostSummary(row, now, sharedName ? new Set([row.hostname]) : new Set(), staleAfterMs),
    openFindings: count.open,
    enrolledAt: row.enrolled_at,
    os: row.os,
    agentVersion: row.agent_version,
    lastSeq: row.last_seq,
    outboxDepth: row.outbox_depth,
    counts: count.counts,
    reports,
    baselineVersion: row.baseline_version,
    labelSources: { api: JSON.parse(row.labels_api) as Record<string, string>, agent: JSON.parse(row.labels_agent) as Record<string, string> },
  };
}

/** A finding row, with the approval that decides its triage, as the API shows it. Pure. */
export function hostFinding(r: FindingRow, now: Date): HostFinding {
  const detail = JSON.parse(r.detail) as Pick<HostFinding, 'attack' | 'actor' | 'configDiff' | 'configDiffNote'>;
  return {
    id: r.id,
    kind: r.kind,
    severity: r.severity,
    source: r.source,
    ecosystem: r.ecosystem,
    name: r.name,
    path: r.path,
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
    resolvedAt: r.resolved_at,
    triage: findingTriage(
      r.decision === null ? null : (JSON.parse(r.decision) as Decision),
      r.waived === 1,
      r.a_kind === null ? undefined : { kind: r.a_kind, created_by: r.a_created_by, reason: r.a_reason, ticket: r.a_ticket, created_at: r.a_created_at, expires_at: r.a_expires_at },
      r.first_seen,
      now,
    ),
    changeSet: r.change_set === null ? null : { id: r.change_set, tool: r.cs_tool, command: r.cs_command },
    attack: detail.attack ?? null,
    actor: detail.actor ?? null,
    ...(detail.configDiff === undefined ? {} : { configDiff: detail.configDiff }),
    ...(detail.configDiffNote === undefined ? {} : { configDiffNote: detail.configDiffNote }),
    detail,
  };
}

/**
 * Each finding's change set and the approval of its current state that decides its triage: one
 * in force if there is one, else the latest (its expiry passed). Reopened approvals no longer
 * count. Over `findings f`; `now` is the placeholder of the clock's ISO time. Both backends.
 */
export const WITH_APPROVAL_COLUMNS = `a.kind AS a_kind, a.created_by AS a_created_by, a.reason AS a_reason, a.ticket AS a_ticket,
  a.created_at AS a_created_at, a.expires_at AS a_expires_at, cs.tool AS cs_tool, cs.command AS cs_command`;
export const withApprovalJoins = (now: string): string => `LEFT JOIN change_sets cs ON cs.host_id = f.host_id AND cs.id = f.change_set
  LEFT JOIN approvals a ON a.id = (
    SELECT x.id FROM approvals x WHERE x.finding_id = f.id AND x.identity = f.identity AND x.reopened_at IS NULL
    ORDER BY (x.expires_at IS NULL OR x.expires_at > ${now}) DESC, x.id DESC LIMIT 1)`;

/**
 * A page of a host's open findings grouped by change set (Queries.pageOpenFindings): the page is
 * cut from the bare findings, so the approval is looked up for its rows only. Placeholders per dialect.
 */
export const openFindingsPageSql = (ph: { hostId: string; now: string; limit: string; offset: string }): string => `WITH page AS (
    SELECT f.id, CASE WHEN f.change_set IS NULL THEN 1 ELSE 0 END AS loose, min(f.id) OVER (PARTITION BY f.change_set) AS first
    FROM findings f WHERE f.host_id = ${ph.hostId} AND f.resolved_at IS NULL
    ORDER BY loose, first, f.id LIMIT ${ph.limit} OFFSET ${ph.offset})
  SELECT f.*, ${WITH_APPROVAL_COLUMNS}
  FROM page p JOIN findings f ON f.id = p.id ${withApprovalJoins(ph.now)}
  ORDER BY p.loose, p.first, f.id`;


/** A host_status_changes row as the store returns it. Pure. */
export const statusChange = (r: { id: number; host_id: string; from_status: string | null; to_status: string; at: string; cause: string; actor: string | null }): StatusChange => ({
  id: r.id,
  hostId: r.host_id,
  from: r.from_status as StatusChange['from'],
  to: r.to_status as StatusChange['to'],
  at: r.at,
  cause: r.cause as StatusChange['cause'],
  actor: r.actor,
});

/** The fleet summary from its two aggregates' rows. Pure. */
export function fleetSummaryOf(statusRows: ReadonlyArray<{ status: string; n: number }>, cohorts: CohortRow[]): { counts: Record<HostStatusName, number>; cohorts: CohortRow[] } {
  const counts: Record<HostStatusName, number> = { cattle: 0, pet: 0, stale: 0, enrolled: 0 };
  for (const r of statusRows) if (r.status in counts) counts[r.status as HostStatusName] += r.n;
  return { counts, cohorts };
}

/** What the API reads. Stale is decided at read time: it depends on the clock, not on a write. */
export function createQueries(db: Db, staleAfterMs: number): Synchronous<Queries> {
  // Containers are children of their host (parent_id): listed under it, not among the hosts.
  const allHosts = db.prepare<[], HostRow>('SELECT * FROM hosts WHERE parent_id IS NULL ORDER BY hostname, id');
  // /metrics counts on the event loop: two columns of each host, in no order (1,000 hosts: 3 ms, not 21-33).
  const hostStatuses = db.prepare<[], Pick<HostRow, 'status' | 'last_report_at'>>('SELECT status, last_report_at FROM hosts WHERE parent_id IS NULL');
  const hostsByImage = db.prepare<[string], HostRow>('SELECT * FROM hosts WHERE image_name = ? AND parent_id IS NULL ORDER BY hostname, id');
  const oneHost = db.prepare<[string], HostRow>('SELECT * FROM hosts WHERE id = ?');
  const reportCount = db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM reports WHERE host_id = ?');
  // `counts` and `openFindings` count the same findings: those that make a pet (see host-status.ts).
  const hostStatus = createHostStatus(db);
  const changeSetsOf = db.prepare<[string], ChangeSetRow>('SELECT * FROM change_sets WHERE host_id = ? ORDER BY coalesce(started_at, first_seen), id');
  const oneChangeSet = db.prepare<[string, string], ChangeSetRow>('SELECT * FROM change_sets WHERE host_id = ? AND id = ?');
  // The latest row of each finding the change set explains (open or since resolved).
  const changeSetFindings = db.prepare<[string, string], { kind: string; ecosystem: string | null; name: string | null; path: string | null; detail: string; resolved_at: string | null }>(
    `SELECT kind, ecosystem, name, path, detail, resolved_at FROM findings
     WHERE id IN (SELECT max(id) FROM findings WHERE host_id = ? AND change_set = ? GROUP BY key) ORDER BY kind, name, path`,
  );
  // Each finding with the approval of its current state that decides its triage: one in force
  // if there is one, else the latest (its expiry passed). Reopened approvals no longer count.
  const withApproval = (where: string) =>
    db.prepare<{ hostId: string; now: string }, FindingRow>(`SELECT f.*, ${WITH_APPROVAL_COLUMNS} FROM findings f ${withApprovalJoins('@now')} WHERE f.host_id = @hostId ${where} ORDER BY f.id`);
  const openFindingsPage = db.prepare<{ hostId: string; now: string; limit: number; offset: number }, FindingRow>(openFindingsPageSql({ hostId: '@hostId', now: '@now', limit: '@limit', offset: '@offset' }));
  const openCount = db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM findings WHERE host_id = ? AND resolved_at IS NULL');
  const hostAuditRows = db.prepare<[string, string, string, number], Parameters<typeof auditEntry>[0]>(`SELECT * FROM audit_log WHERE ${HOST_AUDIT_WHERE('?', '?', '?')} ORDER BY id DESC LIMIT ?`);
  const statusRows = db.prepare<[string, number], Parameters<typeof statusChange>[0]>('SELECT * FROM host_status_changes WHERE host_id = ? ORDER BY id DESC LIMIT ?');
  const storedPets = db.prepare<[], { n: number }>(STORED_PETS_SQL);
  const namesShared = (names: readonly string[]): Set<string> => {
    if (names.length === 0) return new Set();
    const rows = db.prepare<string[], { hostname: string }>(`SELECT hostname FROM hosts WHERE hostname IN (${names.map(() => '?').join(', ')}) GROUP BY hostname HAVING count(*) > 1`).all(...names);
    return new Set(rows.map((r) => r.hostname));
  };
  const findings = {
    open: withApproval('AND f.resolved_at IS NULL'),
    resolved: withApproval('AND f.resolved_at IS NOT NULL'),
    all: withApproval(''),
  };
  const images = db.prepare<[], Omit<ImageSummary, 'hosts'> & { hosts: number }>(
    `SELECT i.name, i.version, i.source, i.first_seen AS firstSeen, i.last_seen AS lastSeen,
       (SELECT count(*) FROM hosts h WHERE h.image_name = i.name AND h.image_version = i.version AND h.parent_id IS NULL) AS hosts,
       i.packages, i.files
     FROM images i ORDER BY i.name, i.version`,
  );
  const reports = db.prepare<[string], { seq: number; hash: string; prevHash: string | null; kind: string; receivedAt: string }>(
    'SELECT seq, hash, prev_hash AS prevHash, kind, received_at AS receivedAt FROM reports WHERE host_id = ? ORDER BY id',
  );

  // The same findings host-status.ts counts, ranked critical first.
  const worst = db.prepare<{ now: string }, { host_id: string; rank: number }>(
    `SELECT f.host_id, min(CASE f.severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 WHEN 'low' THEN 3 ELSE 4 END) AS rank
     FROM findings f WHERE f.resolved_at IS NULL AND f.waived = 0
       AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.finding_id = f.id AND a.identity = f.identity AND a.reopened_at IS NULL
                       AND (a.expires_at IS NULL OR a.expires_at > @now))
     GROUP BY f.host_id`,
  );
  const sharedHostnames = db.prepare<[], { hostname: string }>('SELECT hostname FROM hosts GROUP BY hostname HAVING count(*) > 1');
  const sameHostname = db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM hosts WHERE hostname = ?');
  const shared = (): Set<string> => new Set(sharedHostnames.all().map((r) => r.hostname));

  return {
    listHosts(query, now) {
      const rows = query.image !== undefined ? hostsByImage.all(query.image) : allHosts.all();
      const names = shared();
      const hosts = rows.map((r) => hostSummary(r, now, names, staleAfterMs));
      return query.status === undefined ? hosts : hosts.filter((h) => h.status === query.status);
    },
    // One read transaction: the row, its counts and its report count from one snapshot. Read
    // statement by statement, a report committed in between showed `reports: 1` beside the row
    // from before it (`enrolled`, no report yet).
    getHost(id, now) {
      return db.transaction(() => {
        const row = oneHost.get(id);
        if (row === undefined) return null;
        return hostDetail(row, hostStatus.count(id, now), (sameHostname.get(row.hostname)?.n ?? 0) > 1, reportCount.get(id)?.n ?? 0, now, staleAfterMs);
      })();
    },
    listFindings(hostId, query, now) {
      if (oneHost.get(hostId) === undefined) return null;
      return findings[query.state].all({ hostId, now: now.toISOString() }).map((r) => hostFinding(r, now));
    },
    listChangeSets(hostId) {
      if (oneHost.get(hostId) === undefined) return null;
      return changeSetsOf.all(hostId).map((cs) => {
        const { paths, ...rest } = describeChangeSet(cs, changeSetFindings.all(hostId, cs.id));
        return { ...rest, paths: paths.length };
      });
    },
    getChangeSet(hostId, id) {
      const cs = oneChangeSet.get(hostId, id);
      return cs === undefined ? null : describeChangeSet(cs, changeSetFindings.all(hostId, id));
    },
    listImages: () => images.all(),
    listReports: (hostId) => reports.all(hostId),
    worstSeverities(now) {
      const out: Record<string, string> = {};
      for (const r of worst.iterate({ now: now.toISOString() })) out[r.host_id] = SEVERITIES[r.rank] ?? 'info';
      return out;
    },
    fleetHosts(query, at, now) {
      const { sql, params } = fleetHostsSql(query, at, now, staleAfterMs, 'sqlite');
      const rows = db.prepare<unknown[], HostRow>(sql).all(...params);
      const names = namesShared([...new Set(rows.map((r) => r.hostname))]);
      return rows.map((r) => hostSummary(r, now, names, staleAfterMs));
    },
    fleetCount(query, now) {
      const { sql, params } = fleetCountSql(query, now, staleAfterMs, 'sqlite');
      return db.prepare<unknown[], { n: number }>(sql).get(...params)!.n;
    },
    fleetSummary(now, limit) {
      const counts = statusCountsSql(now, staleAfterMs, 'sqlite');
      const cohorts = cohortsSql(now, staleAfterMs, limit, 'sqlite');
      return db.transaction(() =>
        fleetSummaryOf(db.prepare<unknown[], { status: string; n: number }>(counts.sql).all(...counts.params), db.prepare<unknown[], CohortRow>(cohorts.sql).all(...cohorts.params)),
      )();
    },
    petChanges(since) {
      const deltas = petDeltasSql(since.toISOString().slice(0, 10), 'sqlite');
      return db.transaction(() => ({ petsNow: storedPets.get()!.n, deltas: db.prepare<unknown[], { day: string; delta: number }>(deltas.sql).all(...deltas.params) }))();
    },
    statusHistory(hostId, limit) {
      if (oneHost.get(hostId) === undefined) return null;
      return statusRows.all(hostId, limit).reverse().map(statusChange);
    },
    pageOpenFindings(hostId, at, now) {
      return db.transaction(() => {
        if (oneHost.get(hostId) === undefined) return null;
        const findings = openFindingsPage.all({ hostId, now: now.toISOString(), ...at }).map((r) => hostFinding(r, now));
        return { findings, total: openCount.get(hostId)!.n };
      })();
    },
    hostAudit(hostId, limit) {
      return hostAuditRows.all(...hostAuditRange(hostId), limit).reverse().map(auditEntry);
    },
    countHosts(now) {
      const out = { cattle: 0, pet: 0, stale: 0, enrolled: 0 };
      for (const row of hostStatuses.iterate()) out[effectiveStatus(row.status, row.last_report_at, now, staleAfterMs)]++;
      return out;
    },
  };
}
