// What ingest does after storing a report's findings, inside its transaction, on PostgreSQL: the
// rules (compiled once per version), the alert policy with the host's remembered alerts, one
// queued delivery per alert and sink. Never sends (the delivery loop does). See ../alerting.ts.
import { parseRuleSet, emptyRuleSet } from '../../../shared/rules.js';
import { compareSeverity } from '../../../shared/findings.js';
import type { AlertSink } from '../../../shared/alerts.js';
import type { Finding } from '../../../shared/report.js';
import { DEFAULT_ALERT_POLICY, composeTrigger, emptyHostAlertMemory, heldUntil, planAlerts } from '../../alerts/policy.js';
import type { AlertPolicy, HostAlertMemory } from '../../alerts/policy.js';
import type { Alert } from '../../alerts/alert.js';
import { planDeliveries } from '../../alerts/queue.js';
import type { QueuedDelivery } from '../../alerts/queue.js';
import { applyRules, compileRules, needsAttention } from '../../rules.js';
import type { CompiledRules, EvaluatedFinding } from '../../rules.js';
import { heldAlertsOf } from '../alerting.js';
import type { HostForAlerts } from '../alerting.js';
import type { HeldAlerts } from '../types.js';
import { timeOrderedUuid } from '../time-ordered-id.js';
import { INSERT_DELIVERIES, deliveryParameters } from './alert-queue.js';
import type { DeliveryInsert, PgAlertQueue, PgSinkReader } from './alert-queue.js';
import type { Sql } from './db.js';

/**
 * What one ingest batch reads once instead of once a report: its hosts' alert memories (locked,
 * so the hold-release schedule skips them until the batch commits) and the sinks. A host not in
 * `memory` is read on its own (a container, a host outside the batch). What it writes of them
 * (the memories of its hosts, the queued and planned deliveries) waits in `writes` and goes in
 * one statement each at `finishBatch`, in the same transaction: nobody else reads them before.
 */
export interface AlertBatch {
  memory: Map<string, string | undefined>;
  sinks?: AlertSink[];
  writes: { memories: Map<string, MemoryWrite>; deliveries: DeliveryInsert[] };
}

/** A host's alert memory as written. */
interface MemoryWrite {
  memory: string;
  updatedAt: string;
  releaseAt: number | null;
}

export interface PgAlerting {
  /** Reads the current rule set (once per call of a report or act); `evaluate` then applies it. */
  rules(q: Sql): Promise<CompiledRules>;
  evaluate(rules: CompiledRules, findings: readonly Finding[], host: HostForAlerts, image: { name: string }, at: Date, ticket?: string): EvaluatedFinding[];
  alert(q: Sql, host: HostForAlerts, image: { name: string; version: string }, findings: readonly EvaluatedFinding[], status: 'cattle' | 'pet' | 'stale', now: Date, batch?: AlertBatch): Promise<Alert[]>;
  /**
   * What an ingest batch reads once, in one statement (a round trip costs both processes more
   * than these rows do): the rule set, the sinks, the alert memories of its hosts (locked, in id
   * order as their host rows) and, for ingest's first tickets, the open findings with a ticket of
   * `ticketHosts`.
   */
  startBatch(q: Sql, hostIds: readonly string[], ticketHosts: readonly string[]): Promise<{ rules: CompiledRules; alerts: AlertBatch; tickets: TicketRow[] }>;
  /** Writes what the batch's alerts left in `writes` (before its transaction commits). */
  finishBatch(q: Sql, batch: AlertBatch): Promise<void>;
  labelsOf(q: Sql, hostId: string): Promise<Record<string, string>>;
  releaseDue(q: Sql, now: Date): Promise<string[]>;
  compose(q: Sql, delivery: QueuedDelivery, now: Date): Promise<Alert | null>;
  listHeld(q: Sql, hostId?: string): Promise<HeldAlerts[]>;
}

const UPSERT_MEMORIES = (from: number): string => `INSERT INTO host_alert_memory (host_id, memory, updated_at, release_at)
  SELECT * FROM unnest($${from}::text[], $${from + 1}::text[], $${from + 2}::text[], $${from + 3}::bigint[])
  ON CONFLICT (host_id) DO UPDATE SET memory = excluded.memory, updated_at = excluded.updated_at, release_at = excluded.release_at`;
const memoryParameters = (rows: ReadonlyArray<[string, MemoryWrite]>): unknown[] => [rows.map(([id]) => id), rows.map(([, w]) => w.memory), rows.map(([, w]) => w.updatedAt), rows.map(([, w]) => w.releaseAt)];

/** Hosts' alert memories, in one statement however many. */
const upsertMemories = (q: Sql, rows: ReadonlyArray<[string, MemoryWrite]>): Promise<number> => q.run(UPSERT_MEMORIES(1), memoryParameters(rows));

// A batch's queued deliveries and its hosts' memories in one statement (the deliveries' insert as a CTE).
const INSERT_DELIVERIES_AND_MEMORIES = `WITH d AS (${INSERT_DELIVERIES}) ${UPSERT_MEMORIES(13)}`;

/** An open finding with a ticket, of a host of the batch. */
export interface TicketRow {
  host_id: string;
  key: string;
  ticket: string | null;
}

// A batch's reads: its hosts' alert memories, locked in id order ('m'; MATERIALIZED so that the
// lock is the CTE's own ORDER BY, as a statement of its own took it), the latest rule set (its
// body only when it is not the version compiled already: 'r'), the sinks in id order ('s') and
// the open findings with a ticket of the reporting hosts ('t').
const BATCH_READS = `WITH m AS MATERIALIZED (SELECT host_id, memory FROM host_alert_memory WHERE host_id = ANY($1::text[]) ORDER BY host_id FOR UPDATE)
  SELECT 'm' AS what, host_id AS id, memory AS text, NULL::text AS ticket FROM m
  UNION ALL SELECT 'r', r.version::text, CASE WHEN r.version = $2 THEN NULL ELSE r.body END, NULL
    FROM (SELECT version, body FROM rule_sets ORDER BY version DESC LIMIT 1) r
  UNION ALL SELECT 's', s.id, s.config, NULL FROM alert_sinks s
  UNION ALL SELECT 't', f.host_id, f.key, f.ticket FROM findings f WHERE f.host_id = ANY($3::text[]) AND f.resolved_at IS NULL AND f.ticket IS NOT NULL
  ORDER BY what, id`;

/**
 * A host's alert memory as parsed, while its stored text is the same: a batch reads the text of
 * each of its hosts and most of them were written by this node's last batch of that host, whose
 * plan is the parsed memory. Bounded: past `MEMORIES_KEPT` hosts it starts again.
 */
const MEMORIES_KEPT = 50_000;

export function createPgAlerting(queue: PgAlertQueue, sinks: PgSinkReader, policy: AlertPolicy = DEFAULT_ALERT_POLICY): PgAlerting {
  let compiled: { version: number; rules: CompiledRules } = { version: 0, rules: compileRules(emptyRuleSet()) };
  const compile = (version: number, body: string | null): CompiledRules => {
    if (version !== compiled.version) compiled = { version, rules: compileRules(body === null ? emptyRuleSet() : parseRuleSet(JSON.parse(body), `rule set ${version}`)) };
    return compiled.rules;
  };
  const parsed = new Map<string, { text: string; memory: HostAlertMemory }>();
  const memoryOf = (hostId: string, text: string | undefined): HostAlertMemory => {
    if (text === undefined) return emptyHostAlertMemory();
    const known = parsed.get(hostId);
    if (known !== undefined && known.text === text) return known.memory;
    return JSON.parse(text) as HostAlertMemory;
  };
  const remember = (hostId: string, text: string, memory: HostAlertMemory): void => {
    if (parsed.size >= MEMORIES_KEPT) parsed.clear();
    parsed.set(hostId, { text, memory });
  };

  const flushDeliveries = async (q: Sql, batch: AlertBatch): Promise<void> => {
    const rows = batch.writes.deliveries.splice(0);
    await queue.insertRows(q, rows);
  };

  const self: PgAlerting = {
    async rules(q) {
      const row = await q.row<{ version: number; body: string }>('SELECT version, body FROM rule_sets ORDER BY version DESC LIMIT 1');
      return compile(row?.version ?? 0, row?.body ?? null);
    },
    evaluate(rules, findings, host, image, at, ticket) {
      return applyRules(findings, { host, image, at, ...(ticket === undefined ? {} : { ticket }) }, rules);
    },
    async startBatch(q, hostIds, ticketHosts) {
      const rows = await q.rows<{ what: 'm' | 'r' | 's' | 't'; id: string; text: string | null; ticket: string | null }>(BATCH_READS, [hostIds, compiled.version, ticketHosts]);
      const memory = new Map<string, string | undefined>(hostIds.map((id) => [id, undefined]));
      const sinkRows: Array<{ id: string; config: string }> = [];
      const tickets: TicketRow[] = [];
      let rule: { version: number; text: string | null } | undefined;
      for (const r of rows) {
        if (r.what === 'm') memory.set(r.id, r.text ?? undefined);
        else if (r.what === 'r') rule = { version: Number(r.id), text: r.text };
        else if (r.what === 's') sinkRows.push({ id: r.id, config: r.text! });
        else tickets.push({ host_id: r.id, key: r.text!, ticket: r.ticket });
      }
      // The body is left out when it is the version compiled, unless another call compiled another meanwhile.
      const rules = rule !== undefined && rule.text === null && rule.version !== compiled.version ? await self.rules(q) : compile(rule?.version ?? 0, rule?.text ?? null);
      return { rules, alerts: { memory, sinks: sinks.sinksOf(sinkRows), writes: { memories: new Map(), deliveries: [] } }, tickets };
    },
    async finishBatch(q, batch) {
      const m = [...batch.writes.memories];
      batch.writes.memories.clear();
      if (m.length === 0) return flushDeliveries(q, batch);
      const rows = batch.writes.deliveries.splice(0);
      if (rows.length === 0) await upsertMemories(q, m);
      else await q.run(INSERT_DELIVERIES_AND_MEMORIES, [...deliveryParameters(rows), ...memoryParameters(m)]);
    },
    async alert(q, host, image, findings, status, now, batch) {
      const stored = batch?.memory.has(host.id)
        ? batch.memory.get(host.id)
        : (await q.row<{ memory: string }>('SELECT memory FROM host_alert_memory WHERE host_id = $1', [host.id]))?.memory;
      const memory = memoryOf(host.id, stored);
      const plan = (routed: (severity: Alert['severity']) => boolean) => planAlerts({ host, image, findings, hostStatus: status, now, memory, policy, routed });
      const routedTo = (to: readonly AlertSink[]) => (severity: Alert['severity']) => to.some((s) => compareSeverity(severity, s.minSeverity) <= 0);
      // The sinks are read only when the (pure) policy needs them: most reports plan nothing, and
      // it asks `routed` synchronously, so it plans once without them and again with them. Once
      // the batch has read them, one plan (planning was half the alert's cost, planned twice).
      let configured: AlertSink[] = batch?.sinks ?? [];
      let planned: ReturnType<typeof plan>;
      if (batch?.sinks !== undefined) planned = plan(routedTo(configured));
      else {
        let asked = false;
        planned = plan(() => (asked = true));
        if (asked || planned.alerts.length > 0) {
          configured = await sinks.listSinksIn(q);
          if (batch !== undefined) batch.sinks = configured;
          planned = plan(routedTo(configured));
        }
      }
      const next = JSON.stringify(planned.memory);
      remember(host.id, next, planned.memory);
      if (next !== stored && batch?.memory.has(host.id)) {
        batch.memory.set(host.id, next);
        batch.writes.memories.set(host.id, { memory: next, updatedAt: now.toISOString(), releaseAt: heldUntil(planned.memory, policy) ?? null });
      } else if (next !== stored) {
        await upsertMemories(q, [[host.id, { memory: next, updatedAt: now.toISOString(), releaseAt: heldUntil(planned.memory, policy) ?? null }]]);
      }
      // The rows of this call's alerts: kept for the end of the batch, or inserted now without one.
      const rows: DeliveryInsert[] = [];
      const writeRows = async (): Promise<void> => {
        if (batch !== undefined) batch.writes.deliveries.push(...rows.splice(0));
        else await queue.insertRows(q, rows.splice(0));
      };
      for (const alert of planned.alerts) {
        if (alert.action === 'resolve') {
          // Only to the sinks that got the trigger: a sink added since never saw the incident
          // (the triggers this batch queued included).
          await writeRows();
          if (batch !== undefined) await flushDeliveries(q, batch);
          const got = new Set(await queue.resolveTargets(q, alert.dedupKey));
          const to = configured.filter((s) => got.has(s.id));
          if (to.length === 0) rows.push(queue.plannedRow(alert, 'no sink got its trigger', now));
          else rows.push(...queue.pendingRows(to.map((s) => ({ id: timeOrderedUuid(now.getTime()), sinkId: s.id, alert, notBefore: now.getTime() })), now));
          continue;
        }
        const deliveries = planDeliveries([alert], configured, now, () => timeOrderedUuid(now.getTime()), planned.basis);
        if (deliveries.length === 0) rows.push(queue.plannedRow(alert, `no sink takes ${alert.severity} alerts`, now));
        else rows.push(...queue.pendingRows(deliveries, now));
      }
      await writeRows();
      return planned.alerts;
    },
    async releaseDue(q, now) {
      const hosts = await q.rows<{ id: string; hostname: string; labels: string; image_name: string | null; image_version: string | null; status: 'cattle' | 'pet' | 'stale' }>(
        `SELECT h.id, h.hostname, h.labels, h.image_name, h.image_version, h.status FROM host_alert_memory m JOIN hosts h ON h.id = m.host_id
         WHERE m.release_at IS NOT NULL AND m.release_at <= $1 ORDER BY h.id FOR UPDATE OF m SKIP LOCKED`,
        [now.getTime()],
      );
      for (const h of hosts) {
        await self.alert(q, { id: h.id, hostname: h.hostname, labels: JSON.parse(h.labels) as Record<string, string> }, { name: h.image_name ?? '', version: h.image_version ?? '' }, [], h.status, now);
      }
      return hosts.map((h) => h.id);
    },
    async compose(q, delivery, now) {
      const queued = delivery.alert;
      if (queued.action !== 'trigger' || delivery.basis === undefined) return queued;
      const host = { ...queued.host, labels: await self.labelsOf(q, queued.host.id) };
      const rules = await self.rules(q);
      const current: EvaluatedFinding[] = [];
      for (const identity of delivery.basis) {
        // The open findings of one change, unless an approval of this very state is in force.
        const standing = await q.rows<{ detail: string; ticket: string | null }>(
          `SELECT f.detail, f.ticket FROM findings f
           WHERE f.host_id = $1 AND f.identity = $2 AND f.resolved_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.finding_id = f.id AND a.identity = f.identity AND a.reopened_at IS NULL
                             AND (a.expires_at IS NULL OR a.expires_at > $3))
           ORDER BY f.id`,
          [host.id, identity, now.toISOString()],
        );
        for (const r of standing) {
          const [e] = self.evaluate(rules, [JSON.parse(r.detail) as Finding], host, queued.image, now, r.ticket ?? undefined);
          if (e !== undefined && needsAttention(e, policy.minSeverity)) current.push(e);
        }
      }
      const fresh = composeTrigger({ host, image: queued.image, ...(queued.link === undefined ? {} : { link: queued.link }) }, current, new Date(queued.at));
      if (fresh === null) return null;
      const alert: Alert = { ...fresh, dedupKey: queued.dedupKey };
      return JSON.stringify(alert) === JSON.stringify(queued) ? queued : alert;
    },
    async listHeld(q, hostId) {
      const rows = await q.rows<{ host_id: string; memory: string; release_at: number }>(
        'SELECT host_id, memory, release_at FROM host_alert_memory WHERE release_at IS NOT NULL AND ($1::text IS NULL OR host_id = $1) ORDER BY release_at, host_id',
        [hostId ?? null],
      );
      return rows.map((r) => heldAlertsOf(r, policy));
    },
    async labelsOf(q, hostId) {
      const r = await q.row<{ labels: string }>('SELECT labels FROM hosts WHERE id = $1', [hostId]);
      return r === undefined ? {} : (JSON.parse(r.labels) as Record<string, string>);
    },
  };
  return self;
}
