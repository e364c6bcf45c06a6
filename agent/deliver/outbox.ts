// The durable outbox: a report is written here before it is sent, and deleted only when the
// server has acknowledged it. Each entry carries the hash of the one before: the report chain.
import { createHash } from 'node:crypto';
import type { Database as Db } from 'better-sqlite3';
import type { Report } from '../../shared/report.js';

export interface OutboxEntry {
  seq: number;
  hash: string;
  prevHash: string | null;
  kind: 'full' | 'event';
  /** The report as JSON text, exactly as it is hashed and sent. */
  body: string;
}

export interface Outbox {
  enqueue(report: Report, kind: 'full' | 'event', now: Date): OutboxEntry;
  /** Entries after `afterSeq`, oldest first. */
  pending(afterSeq: number, limit: number): OutboxEntry[];
  /** The server committed every report up to and including `seq`: they leave the outbox. */
  ack(seq: number): void;
  depth(): number;
  lastAckedSeq(): number;
  /** Highest seq ever assigned (0 before the first report). */
  lastSeq(): number;
}

/** sha256 over the previous hash and this report's JSON: rewriting any past report breaks it. */
export function chainHash(prevHash: string | null, body: string): string {
  return createHash('sha256').update(prevHash ?? '').update('\n').update(body).digest('hex');
}

export function createOutbox(db: Db): Outbox {
  // IF NOT EXISTS rather than a user_version migration: other parts of the agent keep their own
  // tables in the same state database and must not fight over one version number.
  db.exec(`
    CREATE TABLE IF NOT EXISTS outbox (
      seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, prev_hash TEXT, kind TEXT NOT NULL,
      body TEXT NOT NULL, created_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS outbox_chain (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      last_seq INTEGER NOT NULL, last_hash TEXT, last_acked_seq INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO outbox_chain (id, last_seq, last_hash, last_acked_seq) VALUES (1, 0, NULL, 0);
  `);
  const chain = db.prepare<[], { last_seq: number; last_hash: string | null; last_acked_seq: number }>('SELECT last_seq, last_hash, last_acked_seq FROM outbox_chain WHERE id = 1');
  const insert = db.prepare('INSERT INTO outbox (seq, hash, prev_hash, kind, body, created_at) VALUES (?, ?, ?, ?, ?, ?)');
  const advance = db.prepare('UPDATE outbox_chain SET last_seq = ?, last_hash = ? WHERE id = 1');
  const select = db.prepare<[number, number], { seq: number; hash: string; prev_hash: string | null; kind: 'full' | 'event'; body: string }>(
    'SELECT seq, hash, prev_hash, kind, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?',
  );
  const remove = db.prepare('DELETE FROM outbox WHERE seq <= ?');
  const markAcked = db.prepare('UPDATE outbox_chain SET last_acked_seq = max(last_acked_seq, ?) WHERE id = 1');
  const count = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM outbox');

  // Seq assignment, chain and row in one transaction: a crash leaves either all or nothing.
  const enqueue = db.transaction((report: Report, kind: 'full' | 'event', now: Date): OutboxEntry => {
    const c = chain.get()!;
    const body = JSON.stringify(report);
    const entry: OutboxEntry = { seq: c.last_seq + 1, prevHash: c.last_hash, hash: chainHash(c.last_hash, body), kind, body };
    insert.run(entry.seq, entry.hash, entry.prevHash, kind, body, now.toISOString());
    advance.run(entry.seq, entry.hash);
    return entry;
  });
  const ack = db.transaction((seq: number) => {
    remove.run(seq);
    markAcked.run(seq);
  });

  return {
    enqueue: (report, kind, now) => enqueue(report, kind, now),
    pending: (afterSeq, limit) => select.all(afterSeq, limit).map((r) => ({ seq: r.seq, hash: r.hash, prevHash: r.prev_hash, kind: r.kind, body: r.body })),
    ack: (seq) => ack(seq),
    depth: () => count.get()!.n,
    lastAckedSeq: () => chain.get()!.last_acked_seq,
    lastSeq: () => chain.get()!.last_seq,
  };
}
