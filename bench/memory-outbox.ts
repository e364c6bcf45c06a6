// The agent's Outbox contract kept in memory, so one load-generator process can play thousands
// of agents (each with the real transport) without thousands of SQLite files.
import { chainHash } from '../agent/deliver/outbox.js';
import type { Outbox, OutboxEntry } from '../agent/deliver/outbox.js';

export interface MemoryOutbox extends Outbox {
  /** When each seq was handed to the transport, for send→ack latency. */
  readonly queuedAt: Map<number, number>;
}

export function createMemoryOutbox(): MemoryOutbox {
  const entries: OutboxEntry[] = [];
  const queuedAt = new Map<number, number>();
  let lastSeq = 0;
  let lastHash: string | null = null;
  let lastAcked = 0;
  return {
    queuedAt,
    enqueue(report, kind) {
      const body = JSON.stringify(report);
      const e: OutboxEntry = { seq: ++lastSeq, prevHash: lastHash, hash: chainHash(lastHash, body), kind, body };
      lastHash = e.hash;
      entries.push(e);
      queuedAt.set(e.seq, performance.now());
      return e;
    },
    pending(afterSeq, limit) {
      const out: OutboxEntry[] = [];
      for (const e of entries) {
        if (e.seq <= afterSeq) continue;
        out.push(e);
        if (out.length >= limit) break;
      }
      return out;
    },
    ack(seq) {
      // Cumulative, as the agent's outbox: entries are in seq order.
      let n = 0;
      while (n < entries.length && entries[n]!.seq <= seq) n++;
      if (n > 0) entries.splice(0, n);
      lastAcked = Math.max(lastAcked, seq);
    },
    depth: () => entries.length,
    lastAckedSeq: () => lastAcked,
    lastSeq: () => lastSeq,
  };
}
