// Triage: approvals, reopenings, re-baselines and rule changes, each one transaction that also
// appends to the audit log and counts the host again (a host that turns cattle resolves its
// open alerts). Who acts is an API token (id and role) or `system` (the schedules).
import type { Database as Db } from 'better-sqlite3';
import { QuicksandError } from '../../shared/errors.js';
import type { AuditEntry } from '../../shared/api.js';
import type { Finding } from '../../shared/report.js';
import { effectiveLabels } from '../../shared/labels.js';
import type { HostLabels } from '../../shared/labels.js';
import type { Alerting } from './alerting.js';
import type { Synchronous } from './async-adapter.js';
import type { AuditQuery } from '../../shared/api.js';
import { actorOf } from './types.js';
import type { AuditRecord, StatusWhy, Triage } from './types.js';
import { createHostStatus } from './host-status.js';
import { createRedecide } from './redecide.js';

/** An open finding as approving it needs it (both backends select these columns). */
export interface OpenFinding {
  id: number;
  identity: string | null;
  key: string;
  kind: string;
  detail: string;
  source: string;
}

type ApproveRequest = Parameters<Triage['approve']>[0];

/** One approvals row, as both backends insert it. */
export interface ApprovalInsert {
  hostId: string;
  findingId: number;
  identity: string;
  kind: 'finding' | 'change-set' | 'rebaseline';
  reason: string;
  ticket: string | null;
  expiresAt: string | null;
  now: string;
  actor: string;
}

/** A host's audit entries and those of its findings and change sets (`host:ID/…`: the range up to the next character after '/'). */
export const HOST_AUDIT_WHERE = (target: string, from: string, to: string): string => `target = ${target} OR (target > ${from} AND target < ${to})`;
export const hostAuditRange = (hostId: string): [string, string, string] => [`host:${hostId}`, `host:${hostId}/`, `host:${hostId}0`];

/** The audit query's filters as both backends bind them: times as the log writes them (ISO, UTC, milliseconds). */
export function auditFilters(q: AuditQuery): { target: string | null; action: string | null; actor: string | null; host: string | null; from: string | null; to: string | null } {
  const iso = (t: string | undefined) => (t === undefined ? null : new Date(t).toISOString());
  return { target: q.target ?? null, action: q.action ?? null, actor: q.actor ?? null, host: q.host ?? null, from: iso(q.from), to: iso(q.to) };
}

/** An approval's expiry must lie ahead: one already past would approve nothing. */
export function checkApprovalExpiry(req: ApproveRequest): void {
  if (req.expiresAt !== undefined && Date.parse(req.expiresAt) <= req.now.getTime()) {
    throw new QuicksandError('BODY_INVALID', `body.expiresAt: ${req.expiresAt} is already past`);
  }
}

/** What approving these open findings writes: one approvals row each, and the audit entry. Pure. */
export function approvalWrites(req: ApproveRequest, rows: readonly OpenFinding[]): { approvals: ApprovalInsert[]; audit: AuditRecord } {
  if (rows.length === 0) throw new QuicksandError('NOT_FOUND', `host ${req.hostId} has no open finding in change set ${req.changeSet ?? ''}`);
  const bySet = req.changeSet !== undefined;
  const approvals = rows.map((r): ApprovalInsert => ({
    hostId: req.hostId,
    findingId: r.id,
    identity: r.identity ?? r.key,
    kind: bySet ? 'change-set' : 'finding',
    reason: req.reason,
    ticket: req.ticket ?? null,
    expiresAt: req.expiresAt ?? null,
    now: req.now.toISOString(),
    actor: req.actor.id,
  }));
  const ids = rows.map((r) => r.id);
  const target = bySet ? `host:${req.hostId}/change-set:${req.changeSet}` : `host:${req.hostId}/finding:${ids.join(',')}`;
  const audit = { actor: req.actor, action: bySet ? 'approve-change-set' : 'approve', target, reason: req.reason, detail: { findings: ids, ticket: req.ticket ?? null, expiresAt: req.expiresAt ?? null }, now: req.now };
  return { approvals, audit };
}

/** An audit_log row as the API shows it. Pure. */
export const auditEntry = ({ actor_name, detail, ...r }: { id: number; at: string; actor: string; actor_name: string | null; role: string; action: string; target: string; reason: string | null; detail: string }): AuditEntry => ({
  ...r,
  actorName: actor_name,
  detail: JSON.parse(detail) as unknown,
});

export function createTriage(db: Db, alerting: Alerting): Synchronous<Triage> {
  const hostStatus = createHostStatus(db);
  const host = db.prepare<[string], { id: string; hostname: string; image_name: string | null; image_version: string | null }>(
    'SELECT id, hostname, image_name, image_version FROM hosts WHERE id = ?',
  );
  const openById = db.prepare<[string, number], OpenFinding>('SELECT id, identity, key, kind, detail, source FROM findings WHERE host_id = ? AND id = ? AND resolved_at IS NULL');
  const openByChangeSet = db.prepare<[string, string], OpenFinding>('SELECT id, identity, key, kind, detail, source FROM findings WHERE host_id = ? AND change_set = ? AND resolved_at IS NULL');
  // Waived ones too: a re-baseline takes the whole observation, not only what counted.
  const openOfHost = db.prepare<[string], OpenFinding>('SELECT id, identity, key, kind, detail, source FROM findings WHERE host_id = ? AND resolved_at IS NULL');
  const insertApproval = db.prepare(
    `INSERT INTO approvals (host_id, finding_id, identity, kind, reason, ticket, expires_at, created_at, created_by)
     VALUES (@hostId, @findingId, @identity, @kind, @reason, @ticket, @expiresAt, @now, @actor)`,
  );
  const reopenApprovals = db.prepare(`UPDATE approvals SET reopened_at = ?, reopened_by = ? WHERE finding_id = ? AND reopened_at IS NULL`);
  const lastBaseline = db.prepare<[string], { v: number | null }>('SELECT max(version) AS v FROM host_baselines WHERE host_id = ?');
  const insertBaseline = db.prepare(
    `INSERT INTO host_baselines (host_id, version, image_name, image_version, accepted, created_at, created_by, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'awaiting-observation')`,
  );
  // A re-baseline again before the agent answered the last one: the new one takes its place.
  const supersede = db.prepare(`UPDATE host_baselines SET state = 'superseded' WHERE host_id = ? AND state = 'awaiting-observation'`);
  const insertRules = db.prepare('INSERT INTO rule_sets (version, body, created_at, created_by) VALUES (?, ?, ?, ?)');
  const lastRules = db.prepare<[], { version: number; body: string }>('SELECT version, body FROM rule_sets ORDER BY version DESC LIMIT 1');
  const redecide = createRedecide(db, alerting);
  const labelsOf = db.prepare<[string], { labels: string; labels_api: string; labels_agent: string }>('SELECT labels, labels_api, labels_agent FROM hosts WHERE id = ?');
  const putApiLabels = db.prepare('UPDATE hosts SET labels_api = ?, labels = ? WHERE id = ?');
  const expiring = db.prepare<[string], { id: number; host_id: string; finding_id: number; expires_at: string }>(
    `SELECT id, host_id, finding_id, expires_at FROM approvals WHERE reopened_at IS NULL AND expired_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?`,
  );
  const noteExpired = db.prepare('UPDATE approvals SET expired_at = ? WHERE id = ?');
  const staleCandidates = db.prepare<[string], { id: string; status: string }>(
    `SELECT id, status FROM hosts WHERE status != 'stale' AND revoked_at IS NULL AND last_report_at IS NOT NULL AND last_report_at < ?`,
  );
  const setStale = db.prepare(`UPDATE hosts SET status = 'stale' WHERE id = ?`);
  const appendAudit = db.prepare(
    'INSERT INTO audit_log (at, actor, actor_name, role, action, target, reason, detail) VALUES (@at, @actor, @actorName, @role, @action, @target, @reason, @detail)',
  );
  // Newest first (one more than asked: is there an older page?), turned oldest first below.
  const auditPage = db.prepare<
    { target: string | null; action: string | null; actor: string | null; host: string | null; from: string | null; to: string | null; before: number | null; limit: number },
    { id: number; at: string; actor: string; actor_name: string | null; role: string; action: string; target: string; reason: string | null; detail: string }
  >(
    `SELECT * FROM audit_log WHERE (@target IS NULL OR target = @target) AND (@action IS NULL OR action = @action) AND (@before IS NULL OR id < @before)
       AND (@actor IS NULL OR actor = @actor OR actor_name = @actor)
       AND (@host IS NULL OR ${HOST_AUDIT_WHERE("'host:' || @host", "'host:' || @host || '/'", "'host:' || @host || '0'")})
       AND (@from IS NULL OR at >= @from) AND (@to IS NULL OR at < @to)
     ORDER BY id DESC LIMIT @limit + 1`,
  );

  const audit: Synchronous<Triage>['audit'] = ({ actor, action, target, reason, detail, now }) => {
    appendAudit.run({ at: now.toISOString(), actor: actor.id, actorName: actor.name ?? null, role: actor.role, action, target, reason: reason ?? null, detail: JSON.stringify(detail ?? {}) });
  };

  const auditAlone = db.transaction((entry: Parameters<Triage['audit']>[0]) => audit(entry));

  function requireHost(hostId: string) {
    const h = host.get(hostId);
    if (h === undefined) throw new QuicksandError('NOT_FOUND', `host ${hostId} is not known`);
    return h;
  }

  /** Counts the host again; cattle now resolves whatever alert is still open for it. */
  function recount(hostId: string, now: Date, why: StatusWhy): 'cattle' | 'pet' {
    const { after } = hostStatus.refresh(hostId, now, why);
    if (after === 'cattle') {
      const h = host.get(hostId)!;
      alerting.alert(
        { id: h.id, hostname: h.hostname, labels: alerting.labelsOf(h.id) },
        { name: h.image_name ?? '', version: h.image_version ?? '' },
        [],
        'cattle',
        now,
      );
    }
    return after;
  }

  const approve = db.transaction((req: ApproveRequest) => {
    requireHost(req.hostId);
    checkApprovalExpiry(req);
    const rows: OpenFinding[] =
      req.changeSet !== undefined
        ? openByChangeSet.all(req.hostId, req.changeSet)
        : (req.findingIds ?? []).map((id) => {
            const row = openById.get(req.hostId, id);
            if (row === undefined) throw new QuicksandError('NOT_FOUND', `host ${req.hostId} has no open finding ${id}`);
            return row;
          });
    const writes = approvalWrites(req, rows);
    for (const a of writes.approvals) insertApproval.run(a);
    audit(writes.audit);
    return { approved: rows.map((r) => r.id), status: recount(req.hostId, req.now, { cause: 'approval', actor: actorOf(req.actor) }) };
  });

  const reopen = db.transaction((req: Parameters<Triage['reopen']>[0]) => {
    requireHost(req.hostId);
    if (openById.get(req.hostId, req.findingId) === undefined) throw new QuicksandError('NOT_FOUND', `host ${req.hostId} has no open finding ${req.findingId}`);
    const n = reopenApprovals.run(req.now.toISOString(), req.actor.id, req.findingId).changes;
    if (n === 0) throw new QuicksandError('CONFLICT', `finding ${req.findingId} has no approval in force to reopen`);
    audit({ actor: req.actor, action: 'reopen', target: `host:${req.hostId}/finding:${req.findingId}`, reason: req.reason, detail: { approvals: n }, now: req.now });
    return { reopened: req.findingId, status: recount(req.hostId, req.now, { cause: 'reopen', actor: actorOf(req.actor) }) };
  });

  // The host's current observation becomes its expected state: every open change is accepted as
  // of now (approved, no expiry) and kept as the host's next baseline version over its image.
  const rebaseline = db.transaction((req: Parameters<Triage['rebaseline']>[0]) => {
    const h = requireHost(req.hostId);
    const rows = openOfHost.all(req.hostId).filter((r) => r.source === 'scan');
    for (const r of rows) {
      insertApproval.run({ hostId: req.hostId, findingId: r.id, identity: r.identity ?? r.key, kind: 'rebaseline', reason: req.reason, ticket: req.ticket ?? null, expiresAt: null, now: req.now.toISOString(), actor: req.actor.id });
    }
    const version = (lastBaseline.get(req.hostId)?.v ?? 0) + 1;
    const accepted = rows.map((r) => JSON.parse(r.detail) as Finding);
    supersede.run(req.hostId);
    insertBaseline.run(req.hostId, version, h.image_name, h.image_version, JSON.stringify(accepted), req.now.toISOString(), req.actor.id);
    audit({ actor: req.actor, action: 'rebaseline', target: `host:${req.hostId}`, reason: req.reason, detail: { version, image: { name: h.image_name, version: h.image_version }, accepted: rows.length, ticket: req.ticket ?? null }, now: req.now });
    return { version, accepted: rows.length, status: recount(req.hostId, req.now, { cause: 'rebaseline', actor: actorOf(req.actor) }), state: 'awaiting-observation' as const };
  });

  // A new rule set applies to what is open now too: a waiver turns a pet cattle at once.
  const saveRules = db.transaction((req: Parameters<Triage['saveRules']>[0]) => {
    const version = (lastRules.get()?.version ?? 0) + 1;
    insertRules.run(version, JSON.stringify(req.set), req.now.toISOString(), req.actor.id);
    for (const h of redecide(null, req.now)) recount(h, req.now, { cause: 'rules', actor: actorOf(req.actor) });
    audit({ actor: req.actor, action: 'rules-update', target: `rules:${version}`, reason: req.reason ?? null, detail: { rules: req.set.rules.map((r) => r.id), maintenanceWindows: req.set.maintenanceWindows.map((w) => w.id) }, now: req.now });
    return { version };
  });

  const setLabels = db.transaction((req: Parameters<Triage['setLabels']>[0]) => {
    requireHost(req.hostId);
    const before = labelsOf.get(req.hostId)!;
    const agent = JSON.parse(before.labels_agent) as HostLabels;
    const labels = effectiveLabels(agent, req.labels);
    putApiLabels.run(JSON.stringify(req.labels), JSON.stringify(labels), req.hostId);
    redecide(req.hostId, req.now);
    const status = recount(req.hostId, req.now, { cause: 'labels', actor: actorOf(req.actor) });
    audit({ actor: req.actor, action: 'labels-set', target: `host:${req.hostId}`, reason: req.reason ?? null, detail: { api: req.labels, before: JSON.parse(before.labels) as unknown, labels }, now: req.now });
    return { labels, api: req.labels, agent, status };
  });

  const expireApprovals = db.transaction((now: Date) => {
    const rows = expiring.all(now.toISOString());
    const hosts = new Set<string>();
    for (const r of rows) {
      noteExpired.run(now.toISOString(), r.id);
      hosts.add(r.host_id);
      audit({ actor: { id: 'system', role: 'system' }, action: 'approval-expired', target: `host:${r.host_id}/finding:${r.finding_id}`, detail: { approval: r.id, expiresAt: r.expires_at }, now });
    }
    for (const h of hosts) recount(h, now, { cause: 'expiry', actor: 'system' });
    return { expired: rows.length, hosts: [...hosts] };
  });

  const markStale = db.transaction((before: Date, now: Date) => {
    const rows = staleCandidates.all(before.toISOString());
    for (const { id, status } of rows) {
      setStale.run(id);
      hostStatus.note(id, status, 'stale', now, { cause: 'stale', actor: 'system' });
      audit({ actor: { id: 'system', role: 'system' }, action: 'host-stale', target: `host:${id}`, detail: { noReportSince: before.toISOString() }, now });
    }
    return rows.map((r) => r.id);
  });

  return {
    // IMMEDIATE: each reads, then writes. A deferred transaction whose snapshot the ingest thread
    // wrote past cannot become a writer and fails at once with SQLITE_BUSY (busy_timeout does not
    // apply); taking the write lock first waits for the ingest thread instead.
    approve: (req) => approve.immediate(req),
    reopen: (req) => reopen.immediate(req),
    rebaseline: (req) => rebaseline.immediate(req),
    saveRules: (req) => saveRules.immediate(req),
    setLabels: (req) => setLabels.immediate(req),
    currentRules() {
      const r = lastRules.get();
      return r === undefined ? null : { version: r.version, set: JSON.parse(r.body) as unknown };
    },
    expireApprovals: (now) => expireApprovals.immediate(now),
    markStale: (before, now) => markStale.immediate(before, now),
    audit: (entry) => auditAlone(entry),
    listAudit(query) {
      const rows = auditPage.all({ ...auditFilters(query), before: query.before ?? null, limit: query.limit });
      const page = rows.slice(0, query.limit).reverse();
      return {
        entries: page.map(auditEntry),
        older: rows.length > query.limit ? page[0]!.id : null,
      };
    },
  };
}
