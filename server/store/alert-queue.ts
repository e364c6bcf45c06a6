// The durable alert queue (AlertQueueStore over SQLite): deliveries, their append-only attempts,
// and the configured sinks. Statements are prepared once; every write is one transaction.
import type { Database as Db } from 'better-sqlite3';
import { alertSinkSchema, scrubUrls } from '../../shared/alerts.js';
import type { AlertSink } from '../../shared/alerts.js';
import { QuicksandError } from '../../shared/errors.js';
import { isPlaintext, openSink, sealSink, sinkKeyOf } from './sink-secrets.js';
import type { Alert } from '../alerts/alert.js';
import type { AlertQueueStore, DeliveryAttempt, NewDelivery, QueuedDelivery } from '../alerts/queue.js';

/** A claimed delivery whose loop died comes back after this long (a send times out far sooner). */
export const CLAIM_LEASE_MS = 5 * 60_000;

export interface DeliveryRow {
  id: string;
  sinkId: string;
  hostId: string | null;
  action: string;
  dedupKey: string;
  state: 'pending' | 'claimed' | 'delivered' | 'gave-up';
  attempts: number;
  nextAttemptAt: number;
  createdAt: string;
  alert: Alert;
}

export interface AttemptRow {
  deliveryId: string;
  sinkId: string;
  attempt: number;
  at: number;
  ok: boolean;
  status: number | null;
  error: string | null;
  result: string;
  nextAttemptAt: number | null;
}

export interface SqliteAlertQueue extends AlertQueueStore {
  /** For callers already inside a transaction (ingest): synchronous. */
  enqueueNow(deliveries: readonly NewDelivery[], now: Date): void;
  listDeliveries(hostId?: string): DeliveryRow[];
  /** One page, oldest first: at most `limit` deliveries after the cursor `after` (`next` of the page before). */
  pageDeliveries(query: { hostId?: string | undefined; limit: number; after?: string | undefined }): { deliveries: DeliveryRow[]; next: string | null };
  listAttempts(deliveryId?: string): AttemptRow[];
  /** The attempts of many deliveries in one query, by delivery id. */
  attemptsOf(deliveryIds: readonly string[]): Map<string, AttemptRow[]>;
}

export interface SinkStore {
  saveSink(sink: AlertSink, now: Date): boolean;
  listSinks(): AlertSink[];
  deleteSink(id: string): boolean;
}

export function createSinkStore(db: Db): SinkStore {
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

interface DeliveryDbRow {
  id: string;
  sink_id: string;
  host_id: string | null;
  action: string;
  dedup_key: string;
  alert: string;
  state: DeliveryRow['state'];
  attempts: number;
  next_attempt_at: number;
  created_at: string;
}

export function createAlertQueue(db: Db): SqliteAlertQueue {
  const insert = db.prepare(
    `INSERT INTO alert_deliveries (id, sink_id, host_id, action, dedup_key, alert, state, attempts, next_attempt_at, created_at)
     VALUES (@id, @sinkId, @hostId, @action, @dedupKey, @alert, 'pending', 0, @notBefore, @createdAt)`,
  );
  // Pending ones that are due, and claimed ones whose lease ran out (their loop died mid-send).
  const due = db.prepare<[number, number, number], DeliveryDbRow>(
    `SELECT * FROM alert_deliveries
     WHERE (state = 'pending' AND next_attempt_at <= ?) OR (state = 'claimed' AND claimed_until <= ?)
     ORDER BY next_attempt_at, created_at LIMIT ?`,
  );
  const claim = db.prepare(`UPDATE alert_deliveries SET state = 'claimed', claimed_until = ? WHERE id = ?`);
  const appendAttempt = db.prepare(
    `INSERT INTO alert_attempts (delivery_id, sink_id, attempt, at, ok, status, error, result, next_attempt_at)
     VALUES (@deliveryId, @sinkId, @attempt, @at, @ok, @status, @error, @result, @nextAttemptAt)`,
  );
  const settle = db.prepare(
    `UPDATE alert_deliveries SET state = @state, attempts = @attempt, next_attempt_at = coalesce(@nextAttemptAt, next_attempt_at), claimed_until = NULL WHERE id = @id`,
  );
  const deliveriesAll = db.prepare<[], DeliveryDbRow>('SELECT * FROM alert_deliveries ORDER BY created_at, id');
  const deliveriesOfHost = db.prepare<[string], DeliveryDbRow>('SELECT * FROM alert_deliveries WHERE host_id = ? ORDER BY created_at, id');
  const page = db.prepare<[{ host: string | null; createdAt: string; id: string; limit: number }], DeliveryDbRow>(
    `SELECT * FROM alert_deliveries WHERE (@host IS NULL OR host_id = @host) AND (created_at, id) > (@createdAt, @id) ORDER BY created_at, id LIMIT @limit`,
  );
  const attemptsIn = db.prepare<[string], Record<string, unknown>>('SELECT * FROM alert_attempts WHERE delivery_id IN (SELECT value FROM json_each(?)) ORDER BY id');
  const attemptsAll = db.prepare<[], Record<string, unknown>>('SELECT * FROM alert_attempts ORDER BY id');
  const attemptsOf = db.prepare<[string], Record<string, unknown>>('SELECT * FROM alert_attempts WHERE delivery_id = ? ORDER BY id');

  const enqueueNow = db.transaction((deliveries: readonly NewDelivery[], now: Date) => {
    for (const d of deliveries) {
      insert.run({
        id: d.id,
        sinkId: d.sinkId,
        hostId: d.alert.host.id,
        action: d.alert.action,
        dedupKey: d.alert.dedupKey,
        alert: JSON.stringify(d.alert),
        notBefore: d.notBefore,
        createdAt: now.toISOString(),
      });
    }
  });
  // Select and mark in one transaction: two loops (or two servers on one file) never share one.
  const claimDue = db.transaction((now: number, limit: number): QueuedDelivery[] => {
    const rows = due.all(now, now, limit);
    for (const r of rows) claim.run(now + CLAIM_LEASE_MS, r.id);
    return rows.map((r) => ({ id: r.id, sinkId: r.sink_id, alert: JSON.parse(r.alert) as Alert, attempts: r.attempts, nextAttemptAt: r.next_attempt_at }));
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
    settle.run({ id: a.deliveryId, state: a.result === 'retry' ? 'pending' : a.result, attempt: a.attempt, nextAttemptAt: a.nextAttemptAt ?? null });
  });

  const toRow = (r: DeliveryDbRow): DeliveryRow => ({
    id: r.id,
    sinkId: r.sink_id,
    hostId: r.host_id,
    action: r.action,
    dedupKey: r.dedup_key,
    state: r.state,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    createdAt: r.created_at,
    alert: JSON.parse(r.alert) as Alert,
  });
  const toAttempt = (r: Record<string, unknown>): AttemptRow => ({
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

  return {
    enqueueNow: (deliveries, now) => enqueueNow(deliveries, now),
    async enqueue(deliveries) {
      enqueueNow(deliveries, new Date());
    },
    async claimDue(now, limit) {
      // IMMEDIATE: it reads before it writes, beside the ingest thread (see triage.ts).
      return claimDue.immediate(now, limit);
    },
    async record(attempt) {
      record(attempt);
    },
    listDeliveries: (hostId) => (hostId === undefined ? deliveriesAll.all() : deliveriesOfHost.all(hostId)).map(toRow),
    pageDeliveries({ hostId, limit, after }) {
      const [createdAt, id] = after === undefined ? ['', ''] : decodeCursor(after);
      const rows = page.all({ host: hostId ?? null, createdAt, id, limit: limit + 1 }).map(toRow);
      const more = rows.length > limit;
      const deliveries = rows.slice(0, limit);
      const last = deliveries.at(-1);
      return { deliveries, next: more && last !== undefined ? encodeCursor(last.createdAt, last.id) : null };
    },
    attemptsOf(deliveryIds) {
      const out = new Map<string, AttemptRow[]>(deliveryIds.map((id) => [id, []]));
      for (const r of attemptsIn.all(JSON.stringify(deliveryIds))) out.get(r.delivery_id as string)?.push(toAttempt(r));
      return out;
    },
    listAttempts: (deliveryId) => (deliveryId === undefined ? attemptsAll.all() : attemptsOf.all(deliveryId)).map(toAttempt),
  };
}

/** A page cursor: where the last page ended, opaque to clients. */
function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');
}

function decodeCursor(cursor: string): [string, string] {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    // falls through to the error below
  }
  throw new QuicksandError('QUERY_INVALID', 'query.cursor: expected the `next` of an earlier page');
}
