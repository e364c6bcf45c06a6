// Triage on PostgreSQL (see ../triage.ts): approvals, reopenings, re-baselines, rules, labels, the
// schedules' writes; each one transaction that also appends to the audit log and counts the host
// again. The host's row is locked first (FOR UPDATE): an act waits for another node's ingest of
// that host instead of interleaving with it.
import { QuicksandError } from '../../../shared/errors.js';
import type { Finding } from '../../../shared/report.js';
import { effectiveLabels } from '../../../shared/labels.js';
import type { HostLabels } from '../../../shared/labels.js';
import { actorOf } from '../types.js';
import type { AuditRecord, StatusWhy, Triage } from '../types.js';
import { HOST_AUDIT_WHERE, approvalWrites, auditEntry, auditFilters, checkApprovalExpiry } from '../triage.js';
import type { ApprovalInsert, OpenFinding } from '../triage.js';
import type { PgAlerting } from './alerting.js';
import type { PgDatabase, Sql } from './db.js';
import { noteStatus, refreshHost } from './host-status.js';
import { redecidePg } from './redecide.js';

interface HostRow {
  id: string;
  hostname: string;
  image_name: string | null;
  image_version: string | null;
}

const OPEN = 'SELECT id, identity, key, kind, detail, source FROM findings WHERE host_id = $1 AND resolved_at IS NULL';
/** Rule sets are numbered one after another: a new one waits for another node's (any number). */
const RULES_LOCK = 0x5153_0002;

export interface PgTriage extends Triage {
  /** Appends to the audit log inside a transaction that is already open. */
  auditIn(q: Sql, entry: AuditRecord): Promise<void>;
}

export function createPgTriage(db: PgDatabase, alerting: PgAlerting): PgTriage {
  const auditIn = async (q: Sql, { actor, action, target, reason, detail, now }: AuditRecord): Promise<void> => {
    await q.run('INSERT INTO audit_log (at, actor, actor_name, role, action, target, reason, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)', [
      now.toISOString(),
      actor.id,
      actor.name ?? null,
      actor.role,
      action,
      target,
      reason ?? null,
      JSON.stringify(detail ?? {}),
    ]);
  };

  async function lockHost(q: Sql, hostId: string): Promise<HostRow> {
    const h = await q.row<HostRow>('SELECT id, hostname, image_name, image_version FROM hosts WHERE id = $1 FOR UPDATE', [hostId]);
    if (h === undefined) throw new QuicksandError('NOT_FOUND', `host ${hostId} is not known`);
    return h;
  }

  /** Counts the host again; cattle now resolves whatever alert is still open for it. */
  async function recount(q: Sql, hostId: string, now: Date, why: StatusWhy): Promise<'cattle' | 'pet'> {
    const { after } = await refreshHost(q, hostId, now, why);
    if (after === 'cattle') {
      const h = (await q.row<HostRow>('SELECT id, hostname, image_name, image_version FROM hosts WHERE id = $1', [hostId]))!;
      await alerting.alert(q, { id: h.id, hostname: h.hostname, labels: await alerting.labelsOf(q, h.id) }, { name: h.image_name ?? '', version: h.image_version ?? '' }, [], 'cattle', now);
    }
    return after;
  }

  const insertApproval = (q: Sql, a: ApprovalInsert): Promise<number> =>
    q.run(
      `INSERT INTO approvals (host_id, finding_id, identity, kind, reason, ticket, expires_at, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [a.hostId, a.findingId, a.identity, a.kind, a.reason, a.ticket, a.expiresAt, a.now, a.actor],
    );

  return {
    auditIn,
    approve: (req) =>
      db.tx(async (q) => {
        await lockHost(q, req.hostId);
        checkApprovalExpiry(req);
        const rows: OpenFinding[] = [];
        if (req.changeSet !== undefined) rows.push(...(await q.rows<OpenFinding>(`${OPEN} AND change_set = $2 ORDER BY id`, [req.hostId, req.changeSet])));
        else {
          for (const id of req.findingIds ?? []) {
            const row = await q.row<OpenFinding>(`${OPEN} AND id = $2`, [req.hostId, id]);
            if (row === undefined) throw new QuicksandError('NOT_FOUND', `host ${req.hostId} has no open finding ${id}`);
            rows.push(row);
          }
        }
        const writes = approvalWrites(req, rows);
        for (const a of writes.approvals) await insertApproval(q, a);
        await auditIn(q, writes.audit);
        return { approved: rows.map((r) => r.id), status: await recount(q, req.hostId, req.now, { cause: 'approval', actor: actorOf(req.actor) }) };
      }),
    reopen: (req) =>
      db.tx(async (q) => {
        await lockHost(q, req.hostId);
        if ((await q.row(`${OPEN} AND id = $2`, [req.hostId, req.findingId])) === undefined) throw new QuicksandError('NOT_FOUND', `host ${req.hostId} has no open finding ${req.findingId}`);
        const n = await q.run('UPDATE approvals SET reopened_at = $1, reopened_by = $2 WHERE finding_id = $3 AND reopened_at IS NULL', [req.now.toISOString(), req.actor.id, req.findingId]);
        if (n === 0) throw new QuicksandError('CONFLICT', `finding ${req.findingId} has no approval in force to reopen`);
        await auditIn(q, { actor: req.actor, action: 'reopen', target: `host:${req.hostId}/finding:${req.findingId}`, reason: req.reason, detail: { approvals: n }, now: req.now });
        return { reopened: req.findingId, status: await recount(q, req.hostId, req.now, { cause: 'reopen', actor: actorOf(req.actor) }) };
      }),
    // Every open change is accepted as of now and kept as the host's next baseline version.
    rebaseline: (req) =>
      db.tx(async (q) => {
        const h = await lockHost(q, req.hostId);
        const rows = (await q.rows<OpenFinding>(`${OPEN} ORDER BY id`, [req.hostId])).filter((r) => r.source === 'scan');
        for (const r of rows) {
          await insertApproval(q, { hostId: req.hostId, findingId: r.id, identity: r.identity ?? r.key, kind: 'rebaseline', reason: req.reason, ticket: req.ticket ?? null, expiresAt: null, now: req.now.toISOString(), actor: req.actor.id });
        }
        const version = ((await q.row<{ v: number | null }>('SELECT max(version) AS v FROM host_baselines WHERE host_id = $1', [req.hostId]))?.v ?? 0) + 1;
        const accepted = rows.map((r) => JSON.parse(r.detail) as Finding);
        // A re-baseline again before the agent answered the last one: the new one takes its place.
        await q.run(`UPDATE host_baselines SET state = 'superseded' WHERE host_id = $1 AND state = 'awaiting-observation'`, [req.hostId]);
        await q.run(
          `INSERT INTO host_baselines (host_id, version, image_name, image_version, accepted, created_at, created_by, state) VALUES ($1, $2, $3, $4, $5, $6, $7, 'awaiting-observation')`,
          [req.hostId, version, h.image_name, h.image_version, JSON.stringify(accepted), req.now.toISOString(), req.actor.id],
        );
        await auditIn(q, { actor: req.actor, action: 'rebaseline', target: `host:${req.hostId}`, reason: req.reason, detail: { version, image: { name: h.image_name, version: h.image_version }, accepted: rows.length, ticket: req.ticket ?? null }, now: req.now });
        return { version, accepted: rows.length, status: await recount(q, req.hostId, req.now, { cause: 'rebaseline', actor: actorOf(req.actor) }), state: 'awaiting-observation' as const };
      }),
    // A new rule set applies to what is open now too: a waiver turns a pet cattle at once.
    saveRules: (req) =>
      db.tx(async (q) => {
        await q.run('SELECT pg_advisory_xact_lock($1)', [RULES_LOCK]);
        const version = ((await q.row<{ version: number }>('SELECT version FROM rule_sets ORDER BY version DESC LIMIT 1'))?.version ?? 0) + 1;
        await q.run('INSERT INTO rule_sets (version, body, created_at, created_by) VALUES ($1, $2, $3, $4)', [version, JSON.stringify(req.set), req.now.toISOString(), req.actor.id]);
        for (const h of await redecidePg(q, alerting, null, req.now)) await recount(q, h, req.now, { cause: 'rules', actor: actorOf(req.actor) });
        await auditIn(q, { actor: req.actor, action: 'rules-update', target: `rules:${version}`, reason: req.reason ?? null, detail: { rules: req.set.rules.map((r) => r.id), maintenanceWindows: req.set.maintenanceWindows.map((w) => w.id) }, now: req.now });
        return { version };
      }),
    setLabels: (req) =>
      db.tx(async (q) => {
        await lockHost(q, req.hostId);
        const before = (await q.row<{ labels: string; labels_api: string; labels_agent: string }>('SELECT labels, labels_api, labels_agent FROM hosts WHERE id = $1', [req.hostId]))!;
        const agent = JSON.parse(before.labels_agent) as HostLabels;
        const labels = effectiveLabels(agent, req.labels);
        await q.run('UPDATE hosts SET labels_api = $1, labels = $2 WHERE id = $3', [JSON.stringify(req.labels), JSON.stringify(labels), req.hostId]);
        await redecidePg(q, alerting, req.hostId, req.now);
        const status = await recount(q, req.hostId, req.now, { cause: 'labels', actor: actorOf(req.actor) });
        await auditIn(q, { actor: req.actor, action: 'labels-set', target: `host:${req.hostId}`, reason: req.reason ?? null, detail: { api: req.labels, before: JSON.parse(before.labels) as unknown, labels }, now: req.now });
        return { labels, api: req.labels, agent, status };
      }),
    async currentRules() {
      const r = await db.row<{ version: number; body: string }>('SELECT version, body FROM rule_sets ORDER BY version DESC LIMIT 1');
      return r === undefined ? null : { version: r.version, set: JSON.parse(r.body) as unknown };
    },
    expireApprovals: (now) =>
      db.tx(async (q) => {
        // SKIP LOCKED: another node expiring the same approvals now takes them, this one the rest.
        const rows = await q.rows<{ id: number; host_id: string; finding_id: number; expires_at: string }>(
          `SELECT id, host_id, finding_id, expires_at FROM approvals WHERE reopened_at IS NULL AND expired_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $1
           ORDER BY id FOR UPDATE SKIP LOCKED`,
          [now.toISOString()],
        );
        const hosts = new Set<string>();
        for (const r of rows) {
          await q.run('UPDATE approvals SET expired_at = $1 WHERE id = $2', [now.toISOString(), r.id]);
          hosts.add(r.host_id);
          await auditIn(q, { actor: { id: 'system', role: 'system' }, action: 'approval-expired', target: `host:${r.host_id}/finding:${r.finding_id}`, detail: { approval: r.id, expiresAt: r.expires_at }, now });
        }
        for (const h of hosts) await recount(q, h, now, { cause: 'expiry', actor: 'system' });
        return { expired: rows.length, hosts: [...hosts] };
      }),
    markStale: (before, now) =>
      db.tx(async (q) => {
        const rows = await q.rows<{ id: string; status: string }>(
            `SELECT id, status FROM hosts WHERE status <> 'stale' AND revoked_at IS NULL AND last_report_at IS NOT NULL AND last_report_at < $1 ORDER BY id FOR UPDATE SKIP LOCKED`,
            [before.toISOString()],
          );
        for (const { id, status } of rows) {
          await q.run(`UPDATE hosts SET status = 'stale' WHERE id = $1`, [id]);
          await noteStatus(q, id, status, 'stale', now, { cause: 'stale', actor: 'system' });
          await auditIn(q, { actor: { id: 'system', role: 'system' }, action: 'host-stale', target: `host:${id}`, detail: { noReportSince: before.toISOString() }, now });
        }
        return rows.map((r) => r.id);
      }),
    audit: (entry) => auditIn(db, entry),
    async listAudit(query) {
      const f = auditFilters(query);
      // Newest first (one more than asked: is there an older page?), turned oldest first below.
      const rows = await db.rows<{ id: number; at: string; actor: string; actor_name: string | null; role: string; action: string; target: string; reason: string | null; detail: string }>(
        `SELECT * FROM audit_log WHERE ($1::text IS NULL OR target = $1) AND ($2::text IS NULL OR action = $2) AND ($3::bigint IS NULL OR id < $3)
           AND ($5::text IS NULL OR actor = $5 OR actor_name = $5)
           AND ($6::text IS NULL OR ${HOST_AUDIT_WHERE("'host:' || $6", "'host:' || $6 || '/'", "'host:' || $6 || '0'")})
           AND ($7::text IS NULL OR at >= $7) AND ($8::text IS NULL OR at < $8)
         ORDER BY id DESC LIMIT $4`,
        [f.target, f.action, query.before ?? null, query.limit + 1, f.actor, f.host, f.from, f.to],
      );
      const page = rows.slice(0, query.limit).reverse();
      return {
        entries: page.map(auditEntry),
        older: rows.length > query.limit ? page[0]!.id : null,
      };
    },
  };
}
