// The durable alert queue (AlertQueueStore over SQLite): deliveries, their append-only attempts,
// and the configured sinks. Statements are prepared once; every write is one transaction.
import type { Database as Db } from 'better-sqlite3';
import { alertSinkSchema, scrubUrls } from '../../shared/alerts.js';
import { QuicksandError } from '../../shared/errors.js';
import { isPlaintext, openSink, sealSink, sinkKeyOf } from './sink-secrets.js';
import type { Alert } from '../alerts/alert.js';
import { CLAIM_LEASE_MS } from '../alerts/queue.js';
import type { DeliveryAttempt, NewDelivery, QueuedDelivery } from '../alerts/queue.js';
import type { Synchronous } from './async-adapter.js';
import type { AlertQueue, AttemptRow, DeliveryRow, SinkStore } from './types.js';
import { timeOrderedUuid } from './time-ordered-id.js';

/**
 * Pending deliveries that are due, and claimed ones whose lease ran out (their loop died
 * mid-send). `state IN (...)` first: it is the partial index's condition, so the planner walks
 * that small index (in next_attempt_at order) instead of scanning every delivery ever planned —
 * a full scan of 100,000 rows each second, under the write lock, stalled ingest.
 */
export const DUE_DELIVERIES_SQL = `SELECT * FROM alert_deliveries
  WHERE state IN ('pending', 'claimed') AND ((state = 'pending' AND next_attempt_at <= ?) OR (state = 'claimed' AND claimed_until <= ?))
  ORDER BY next_attempt_at, created_at LIMIT ?`;

/** The SQLite queue: the port, answering at once, and what ingest's transaction also calls. */
export interface SqliteAlertQueue extends Synchronous<AlertQueue> {
  /** Records an alert no sink takes (`planned`), with why. */
  recordPlanned(alert: Alert, reason: string, now: Date): void;
  /**
   * Where the resolve of `dedupKey` goes: the sinks its trigger reached (delivered, or being sent
   * now). A trigger still waiting is withdrawn instead: that sink never saw the incident.
   */
  resolveTargets(dedupKey: string): string[];
}

export function createSinkStore(db: Db): Synchronous<SinkStore> {
  const key = sinkKeyOf(db);
  const upsert = db.prepare(
    `INSERT INTO alert_sinks (id, config, created_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET config = excluded.config`,
  );
  const exists = db.prepare<[string], { id: string }>('SELECT id FROM alert_sinks WHERE id = ?');
  const all = db.prepare<[], { id: string; config: string }>('SELECT id, config FROM alert_sinks ORDER BY id');
  const remove = db.prepare('DELETE FROM alert_sinks WHERE id = ?');
  const reseal = db.prepare('UPDATE alert_sinks SET config = ? WHERE id = ? AND config = ?');
  // Rows an older server stored in plaintext are encrypted the first time this store opens, and
  // the plaintext is overwritten on disk (secure_delete zeroes what the update frees).
  const plain = all.all().filter((r) => isPlaintext(r.config));
  if (plain.length > 0) {
    db.pragma('secure_delete = ON');
    db.transaction(() => {
      for (const r of plain) reseal.run(sealSink(key, r.id, r.config), r.id, r.config);
    }).immediate();
    db.pragma('secure_delete = OFF');
    if (!db.memory) db.pragma('wal_checkpoint(TRUNCATE)');
  }
  return {
    saveSink(sink, now) {
      const replaced = exists.get(sink.id) !== undefined;
      upsert.run(sink.id, sealSink(key, sink.id, JSON.stringify(sink)), now.toISOString());
      return replaced;
    },
    // Stored after parsing, so parse again only to get the type back (and defaults of newer versions).
    listSinks: () => all.all().map((r) => alertSinkSchema.parse(JSON.parse(openSink(key, r.id, r.config)))),
    deleteSink: (id) => remove.run(id).changes > 0,
  };
}

export interface DeliveryDbRow {
  id: string;
  sink_id: string;
  host_id: string | null;
  action: string;
  dedup_key: string;
  alert: string;
  state: DeliveryRow['state'];
  reason: string | null;
  basis: string | null;
  attempts: number;
  next_attempt_at: number;
  created_at: string;
}

/** `compose` makes a queued trigger's content again when it is sent (see AlertQueueStore.current). */
export function createAlertQueue(db: Db, compose?: Synchronous<AlertQueue>['current']): SqliteAlertQueue {
  const insert = db.prepare(
    `INSERT INTO alert_deliveries (id, sink_id, host_id, action, dedup_key, alert, state, attempts, next_attempt_at, created_at, basis, reason)
     VALUES (@id, @sinkId, @hostId, @action, @dedupKey, @alert, @state, 0, @notBefore, @createdAt, @basis, @reason)`,
  );
  const triggersOf = db.prepare<[string], { id: string; sink_id: string; state: string }>(
    `SELECT id, sink_id, state FROM alert_deliveries WHERE dedup_key = ? AND action = 'trigger' AND state IN ('pending', 'claimed', 'delivered')`,
  );
  const withdraw = db.prepare(`UPDATE alert_deliveries SET state = 'withdrawn', reason = ? WHERE id = ? AND state = 'pending'`);
  const due = db.prepare<[number, number, number], DeliveryDbRow>(DUE_DELIVERIES_SQL);
  const claim = db.prepare(`UPDATE alert_deliveries SET state = 'claimed', claimed_until = ? WHERE id = ?`);
  const appendAttempt = db.prepare(
    `INSERT INTO alert_attempts (delivery_id, sink_id, attempt, at, ok, status, error, result, next_attempt_at)
     VALUES (@deliveryId, @sinkId, @attempt, @at, @ok, @status, @error, @result, @nextAttemptAt)`,
  );
  const settle = db.prepare(
    `UPDATE alert_deliveries SET state = @state, attempts = @attempt, next_attempt_at = coalesce(@nextAttemptAt, next_attempt_at), claimed_until = NULL,
       alert = coalesce(@sent, alert) WHERE id = @id`,
  );
  const deliveries = db.prepare<{ hostId: string | null; state: string | null }, DeliveryDbRow>(
    'SELECT * FROM alert_deliveries WHERE (@hostId IS NULL OR host_id = @hostId) AND (@state IS NULL OR state = @state) ORDER BY created_at, rowid',
  );
  // In the order listDeliveries gives (created_at, then insertion): the cursor is the last row's pair.
  const page = db.prepare<[{ host: string | null; state: string | null; createdAt: string; seq: number; limit: number }], DeliveryDbRow & { seq: number }>(
    `SELECT rowid AS seq, * FROM alert_deliveries
     WHERE (@host IS NULL OR host_id = @host) AND (@state IS NULL OR state = @state) AND (created_at, rowid) > (@createdAt, @seq)
     ORDER BY created_at, rowid LIMIT @limit`,
  );
  const attemptsIn = db.prepare<[string], Record<string, unknown>>('SELECT * FROM alert_attempts WHERE delivery_id IN (SELECT value FROM json_each(?)) ORDER BY id');
  const attemptsAll = db.prepare<[], Record<string, unknown>>('SELECT * FROM alert_attempts ORDER BY id');
  const attemptsOf = db.prepare<[string], Record<string, unknown>>('SELECT * FROM alert_attempts WHERE delivery_id = ? ORDER BY id');

  const enqueueAll = db.transaction((deliveries: readonly NewDelivery[], now: Date) => {
    for (const d of deliveries) {
      insert.run({
        id: d.id,
        sinkId: d.sinkId,
        hostId: d.alert.host.id,
        action: d.alert.action,
        dedupKey: d.alert.dedupKey,
        alert: JSON.stringify(d.alert),
        state: 'pending',
        notBefore: d.notBefore,
        createdAt: now.toISOString(),
        basis: d.basis === undefined ? null : JSON.stringify(d.basis),
        reason: null,
      });
    }
  });
  // Select and mark in one transaction: two loops (or two servers on one file) never share one.
  const claimDue = db.transaction((now: number, limit: number): QueuedDelivery[] => {
    const rows = due.all(now, now, limit);
    for (const r of rows) claim.run(now + CLAIM_LEASE_MS, r.id);
    return rows.map(toQueuedDelivery);
  });
  const record = db.transaction((a: DeliveryAttempt) => {
    appendAttempt.run({
      deliveryId: a.deliveryId,
      sinkId: a.sinkId,
      attempt: a.attempt,
      at: a.at,
      ok: a.outcome.ok ? 1 : 0,
      status: a.outcome.status ?? null,
      // Auditors read this log: never a sink URL or credential in it, whatever the sender said.
      error: a.outcome.ok ? null : scrubUrls(a.outcome.error),
      result: a.result,
      nextAttemptAt: a.nextAttemptAt ?? null,
    });
    settle.run({ id: a.deliveryId, state: a.result === 'retry' ? 'pending' : a.result, attempt: a.attempt, nextAttemptAt: a.nextAttemptAt ?? null, sent: a.sent === undefined ? null : JSON.stringify(a.sent) });
  });

  return {
    // Also called inside ingest's transaction (alerting.ts): then it is a savepoint of that one.
    enqueue: (deliveries, now = new Date()) => enqueueAll(deliveries, now),
    // IMMEDIATE: it reads before it writes, beside the ingest thread (see triage.ts).
    // Read first, without the write lock: most rounds find nothing due and need not take it.
    claimDue: (now, limit) => (due.get(now, now, 1) === undefined ? [] : claimDue.immediate(now, limit)),
    record: (attempt) => record(attempt),
    ...(compose === undefined ? {} : { current: compose }),
    recordPlanned(alert, reason, now) {
      insert.run({
        id: timeOrderedUuid(now.getTime()),
        sinkId: '',
        hostId: alert.host.id,
        action: alert.action,
        dedupKey: alert.dedupKey,
        alert: JSON.stringify(alert),
        state: 'planned',
        notBefore: now.getTime(),
        createdAt: now.toISOString(),
        basis: null,
        reason,
      });
    },
    resolveTargets(dedupKey) {
      const sinks = new Set<string>();
      for (const t of triggersOf.all(dedupKey)) {
        if (t.state === 'pending') withdraw.run('resolved before it was sent', t.id);
        else sinks.add(t.sink_id);
      }
      return [...sinks];
    },
    listDeliveries: (hostId, state) => deliveries.all({ hostId: hostId ?? null, state: state ?? null }).map(toDeliveryRow),
    pageDeliveries({ hostId, state, limit, after }) {
      const [createdAt, seq] = after === undefined ? ['', 0] : decodeCursor(after);
      const rows = page.all({ host: hostId ?? null, state: state ?? null, createdAt, seq, limit: limit + 1 });
      const more = rows.length > limit;
      const shown = rows.slice(0, limit);
      const last = shown.at(-1);
      return { deliveries: shown.map(toDeliveryRow), next: more && last !== undefined ? encodeCursor(last.created_at, last.seq) : null };
    },
    attemptsOf(deliveryIds) {
      const out = new Map<string, AttemptRow[]>(deliveryIds.map((id) => [id, []]));
      for (const r of attemptsIn.all(JSON.stringify(deliveryIds))) out.get(r.delivery_id as string)?.push(toAttemptRow(r));
      return out;
    },
    listAttempts: (deliveryId) => (deliveryId === undefined ? attemptsAll.all() : attemptsOf.all(deliveryId)).map(toAttemptRow),
  };
}

/** A page cursor: where the last page ended, opaque to clients. */
export function encodeCursor(createdAt: string, seq: number): string {
  return Buffer.from(JSON.stringify([createdAt, seq])).toString('base64url');
}

export function decodeCursor(cursor: string): [string, number] {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && Number.isSafeInteger(v[1])) return [v[0], v[1] as number];
  } catch {
    // falls through to the error below
  }
  throw new QuicksandError('QUERY_INVALID', 'query.cursor: expected the `next` of an earlier page');
}

/** A claimed row as the delivery loop takes it. */
export const toQueuedDelivery = (r: DeliveryDbRow): QueuedDelivery => ({
  id: r.id,
  sinkId: r.sink_id,
  alert: JSON.parse(r.alert) as Alert,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  ...(r.basis === null ? {} : { basis: JSON.parse(r.basis) as string[] }),
});

/** A delivery row as the API shows it (every backend stores the same columns). */
export const toDeliveryRow = (r: DeliveryDbRow): DeliveryRow => ({
  id: r.id,
  sinkId: r.sink_id === '' ? null : r.sink_id,
  hostId: r.host_id,
  action: r.action,
  dedupKey: r.dedup_key,
  state: r.state,
  reason: r.reason,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  createdAt: r.created_at,
  alert: JSON.parse(r.alert) as Alert,
});
export const toAttemptRow = (r: Record<string, unknown>): AttemptRow => ({
  deliveryId: r.delivery_id as string,
  sinkId: r.sink_id as string,
  attempt: r.attempt as number,
  at: r.at as number,
  ok: r.ok === 1,
  status: (r.status as number | null) ?? null,
  error: (r.error as string | null) ?? null,
  result: r.result as string,
  nextAttemptAt: (r.next_attempt_at as number | null) ?? null,
});
