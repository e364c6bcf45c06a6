// The durable alert queue and the configured sinks on PostgreSQL. Due deliveries are claimed with
// FOR UPDATE SKIP LOCKED: however many nodes run the delivery loop, each delivery goes to one.
import { alertSinkSchema, scrubUrls } from '../../../shared/alerts.js';
import { openSink, sealSink } from '../sink-secrets.js';
import type { Alert } from '../../alerts/alert.js';
import { CLAIM_LEASE_MS } from '../../alerts/queue.js';
import type { NewDelivery } from '../../alerts/queue.js';
import { decodeCursor, encodeCursor, toAttemptRow, toDeliveryRow, toQueuedDelivery } from '../alert-queue.js';
import type { DeliveryDbRow } from '../alert-queue.js';
import type { AlertQueue, SinkStore } from '../types.js';
import { timeOrderedUuid } from '../time-ordered-id.js';
import type { PgDatabase, Sql } from './db.js';

/** The queue's port, and what ingest's transaction also calls (on that transaction's client). */
export interface PgAlertQueue extends AlertQueue {
  enqueueIn(q: Sql, deliveries: readonly NewDelivery[], now: Date): Promise<void>;
  /** Records an alert no sink takes (`planned`), with why. */
  recordPlanned(q: Sql, alert: Alert, reason: string, now: Date): Promise<void>;
  /** Where the resolve of `dedupKey` goes (see the SQLite queue's resolveTargets). */
  resolveTargets(q: Sql, dedupKey: string): Promise<string[]>;
  /** The rows `enqueueIn` and `recordPlanned` would insert, for an ingest batch to insert all at once (`insertRows`). */
  pendingRows(deliveries: readonly NewDelivery[], now: Date): DeliveryInsert[];
  plannedRow(alert: Alert, reason: string, now: Date): DeliveryInsert;
  insertRows(q: Sql, rows: readonly DeliveryInsert[]): Promise<void>;
}

/** The sinks as ingest reads them: in a transaction, or from rows it read with something else (in id order). */
export interface PgSinkReader {
  listSinksIn(q: Sql): Promise<ReturnType<typeof alertSinkSchema.parse>[]>;
  sinksOf(rows: ReadonlyArray<{ id: string; config: string }>): ReturnType<typeof alertSinkSchema.parse>[];
}

export function createPgSinkStore(db: PgDatabase, key: Buffer): SinkStore & PgSinkReader {
  const sinksOf = (rows: ReadonlyArray<{ id: string; config: string }>) => rows.map((r) => alertSinkSchema.parse(JSON.parse(openSink(key, r.id, r.config))));
  const listSinksIn = async (q: Sql) => sinksOf(await q.rows<{ id: string; config: string }>('SELECT id, config FROM alert_sinks ORDER BY id'));
  return {
    async saveSink(sink, now) {
      // xmax = 0 only on a row this statement inserted: otherwise it replaced one.
      const r = await db.row<{ inserted: boolean }>(
        `INSERT INTO alert_sinks (id, config, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET config = excluded.config RETURNING (xmax = 0) AS inserted`,
        [sink.id, sealSink(key, sink.id, JSON.stringify(sink)), now.toISOString()],
      );
      return r?.inserted === false;
    },
    listSinks: () => listSinksIn(db),
    listSinksIn,
    sinksOf,
    deleteSink: async (id) => (await db.run('DELETE FROM alert_sinks WHERE id = $1', [id])) > 0,
  };
}

/** Inserts deliveries from column arrays ($1 to $12, `deliveryParameters`). */
export const INSERT_DELIVERIES = `INSERT INTO alert_deliveries (id, sink_id, host_id, action, dedup_key, alert, state, attempts, next_attempt_at, created_at, basis, reason)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[], $9::bigint[], $10::text[], $11::text[], $12::text[])`;

/** One alert_deliveries row to insert. */
export interface DeliveryInsert {
  id: string;
  sinkId: string;
  alert: Alert;
  state: string;
  notBefore: number;
  createdAt: string;
  basis: string | null;
  reason: string | null;
}

/** One statement for all rows: one round trip per report's alerts, or per ingest batch's. */
async function insertAll(q: Sql, rows: readonly DeliveryInsert[]): Promise<void> {
  if (rows.length === 0) return;
  await q.run(INSERT_DELIVERIES, deliveryParameters(rows));
}

/**
 * INSERT_DELIVERIES's parameters for `rows`, also for a statement that inserts them beside something
 * else (an ingest batch's last write, with its hosts' alert memories: one round trip, not two).
 */
export function deliveryParameters(rows: readonly DeliveryInsert[]): unknown[] {
  const col = <K>(f: (r: DeliveryInsert) => K): K[] => rows.map(f);
  return [
    col((r) => r.id),
    col((r) => r.sinkId),
    col((r) => r.alert.host.id),
    col((r) => r.alert.action),
    col((r) => r.alert.dedupKey),
    col((r) => JSON.stringify(r.alert)),
    col((r) => r.state),
    col(() => 0),
    col((r) => r.notBefore),
    col((r) => r.createdAt),
    col((r) => r.basis),
    col((r) => r.reason),
  ];
}

export function createPgAlertQueue(db: PgDatabase, compose?: AlertQueue['current']): PgAlertQueue {
  const pendingRows = (deliveries: readonly NewDelivery[], now: Date): DeliveryInsert[] =>
    deliveries.map((d) => ({ id: d.id, sinkId: d.sinkId, alert: d.alert, state: 'pending', notBefore: d.notBefore, createdAt: now.toISOString(), basis: d.basis === undefined ? null : JSON.stringify(d.basis), reason: null }));
  const plannedRow = (alert: Alert, reason: string, now: Date): DeliveryInsert => ({ id: timeOrderedUuid(now.getTime()), sinkId: '', alert, state: 'planned', notBefore: now.getTime(), createdAt: now.toISOString(), basis: null, reason });
  const enqueueIn = (q: Sql, deliveries: readonly NewDelivery[], now: Date): Promise<void> => insertAll(q, pendingRows(deliveries, now));
  return {
    pendingRows,
    plannedRow,
    insertRows: insertAll,
    enqueue: (deliveries, now = new Date()) => enqueueIn(db, deliveries, now),
    enqueueIn,
    // Pending ones that are due, and claimed ones whose lease ran out (their loop died mid-send).
    claimDue: (now, limit) =>
      db.tx(async (q) => {
        const rows = await q.rows<DeliveryDbRow>(
          `SELECT * FROM alert_deliveries
           WHERE (state = 'pending' AND next_attempt_at <= $1) OR (state = 'claimed' AND claimed_until <= $1)
           ORDER BY next_attempt_at, created_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
          [now, limit],
        );
        if (rows.length > 0) await q.run(`UPDATE alert_deliveries SET state = 'claimed', claimed_until = $1 WHERE id = ANY($2::text[])`, [now + CLAIM_LEASE_MS, rows.map((r) => r.id)]);
        return rows.map(toQueuedDelivery);
      }),
    record: (a) =>
      db.tx(async (q) => {
        await q.run(
          `INSERT INTO alert_attempts (delivery_id, sink_id, attempt, at, ok, status, error, result, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
          // Auditors read this log: never a sink URL or credential in it, whatever the sender said.
          [a.deliveryId, a.sinkId, a.attempt, a.at, a.outcome.ok ? 1 : 0, a.outcome.status ?? null, a.outcome.ok ? null : scrubUrls(a.outcome.error), a.result, a.nextAttemptAt ?? null],
        );
        await q.run(
          `UPDATE alert_deliveries SET state = $2, attempts = $3, next_attempt_at = coalesce($4, next_attempt_at), claimed_until = NULL, alert = coalesce($5, alert) WHERE id = $1`,
          [a.deliveryId, a.result === 'retry' ? 'pending' : a.result, a.attempt, a.nextAttemptAt ?? null, a.sent === undefined ? null : JSON.stringify(a.sent)],
        );
      }),
    ...(compose === undefined ? {} : { current: compose }),
    recordPlanned: (q, alert, reason, now) => insertAll(q, [plannedRow(alert, reason, now)]),
    async resolveTargets(q, dedupKey) {
      const sinks = new Set<string>();
      const triggers = await q.rows<{ id: string; sink_id: string; state: string }>(
        `SELECT id, sink_id, state FROM alert_deliveries WHERE dedup_key = $1 AND action = 'trigger' AND state IN ('pending', 'claimed', 'delivered') ORDER BY seq`,
        [dedupKey],
      );
      for (const t of triggers) {
        if (t.state === 'pending') await q.run(`UPDATE alert_deliveries SET state = 'withdrawn', reason = $1 WHERE id = $2 AND state = 'pending'`, ['resolved before it was sent', t.id]);
        else sinks.add(t.sink_id);
      }
      return [...sinks];
    },
    async listDeliveries(hostId, state) {
      const rows = await db.rows<DeliveryDbRow>(
        'SELECT * FROM alert_deliveries WHERE ($1::text IS NULL OR host_id = $1) AND ($2::text IS NULL OR state = $2) ORDER BY created_at, seq',
        [hostId ?? null, state ?? null],
      );
      return rows.map(toDeliveryRow);
    },
    async pageDeliveries({ hostId, state, limit, after }) {
      const [createdAt, seq] = after === undefined ? ['', 0] : decodeCursor(after);
      const rows = await db.rows<DeliveryDbRow & { seq: number }>(
        `SELECT * FROM alert_deliveries
         WHERE ($1::text IS NULL OR host_id = $1) AND ($2::text IS NULL OR state = $2) AND (created_at, seq) > ($3::text COLLATE "C", $4::bigint)
         ORDER BY created_at, seq LIMIT $5`,
        [hostId ?? null, state ?? null, createdAt, seq, limit + 1],
      );
      const more = rows.length > limit;
      const shown = rows.slice(0, limit);
      const last = shown.at(-1);
      return { deliveries: shown.map(toDeliveryRow), next: more && last !== undefined ? encodeCursor(last.created_at, last.seq) : null };
    },
    async attemptsOf(deliveryIds) {
      const out = new Map<string, ReturnType<typeof toAttemptRow>[]>(deliveryIds.map((id) => [id, []]));
      for (const r of await db.rows('SELECT * FROM alert_attempts WHERE delivery_id = ANY($1::text[]) ORDER BY id', [deliveryIds])) out.get(r.delivery_id as string)?.push(toAttemptRow(r));
      return out;
    },
    async listAttempts(deliveryId) {
      const rows = deliveryId === undefined ? await db.rows('SELECT * FROM alert_attempts ORDER BY id') : await db.rows('SELECT * FROM alert_attempts WHERE delivery_id = $1 ORDER BY id', [deliveryId]);
      return rows.map(toAttemptRow);
    },
  };
}
