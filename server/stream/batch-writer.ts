// Groups what arrives while earlier batches are being written into the next transaction: one
// commit for hundreds of reports instead of one each, and batches grow by themselves when the
// database is slow. `concurrency` batches may be in flight at once (PostgreSQL writes on several
// connections; SQLite has one writer, so 1): an agent is in at most one of them, and its items
// leave the queue in arrival order, so its reports still commit in sequence. A batch that fails
// fails its agents' reports still queued behind it too: written after it, they would commit ahead
// of the failed ones (which the agent sends again) and break the chain.
import type { Ingest, IngestItem, IngestResult } from '../store/types.js';

export type Done = (result: IngestResult | Error) => void;

export interface BatchWriter {
  /** False (and `done` never called) when the queue is full: the caller answers SERVER_BUSY. */
  write(item: IngestItem, done: Done): boolean;
  /**
   * Calls `fn` once the queue has room again: for a caller whose `write` was refused, so it can
   * hold its sender (a paused socket) instead of turning it away.
   */
  onRoom(fn: () => void): void;
  /** Items queued or being written. */
  depth(): number;
  /** Resolves when everything queued so far has been written (at shutdown). */
  drain(): Promise<void>;
}

/** Items the queue holds at most: reports of agents that wait for acks, not an unbounded pile. */
export const MAX_INGEST_QUEUE = 20_000;

interface Queued {
  item: IngestItem;
  done: Done;
  /** performance.now() when it was queued. */
  at: number;
}

export interface BatchWriterOptions {
  maxBatch?: number;
  maxQueued?: number;
  concurrency?: number;
  onDepth?: (depth: number) => void;
  /** After each batch (written or failed): its items, its oldest item's wait for it to start, its write (ms). */
  onBatch?: (items: number, waitedMs: number, writeMs: number) => void;
}

export function createBatchWriter(ingest: Ingest, opts: BatchWriterOptions = {}): BatchWriter {
  const maxBatch = opts.maxBatch ?? 2000;
  const maxQueued = opts.maxQueued ?? MAX_INGEST_QUEUE;
  const concurrency = Math.max(1, opts.concurrency ?? 1);
  let writing = 0;
  let inFlight = 0;
  let queue: Queued[] = [];
  let scheduled = false;
  let idle: (() => void)[] = [];
  let waitingForRoom: (() => void)[] = [];
  /** Agents with an item in a batch being written: their later items wait for it to commit. */
  const busy = new Set<string>();

  /** The next batch: queued items in order, skipping every agent already in flight. */
  function take(): Queued[] {
    const batch: Queued[] = [];
    const rest: Queued[] = [];
    for (const q of queue) {
      if (batch.length < maxBatch && !busy.has(q.item.agentId)) batch.push(q);
      else rest.push(q);
      // Once the batch is full nothing more joins it, so no agent's later item overtakes an earlier one.
    }
    queue = rest;
    for (const b of batch) busy.add(b.item.agentId);
    return batch;
  }

  function pump(): void {
    scheduled = false;
    while (inFlight < concurrency && queue.length > 0) {
      const batch = take();
      if (batch.length === 0) break;
      inFlight++;
      writing += batch.length;
      const started = performance.now();
      void (async () => {
        try {
          const results = await ingest.ingestBatch(batch.map((b) => b.item));
          batch.forEach((b, i) => b.done(results[i]!));
        } catch (err) {
          // Nothing of the batch is committed (the transaction rolled back): nobody gets an ack,
          // and the agents send again from their outboxes, from the failed report on.
          const failed = new Set(batch.filter((b) => b.item.type === 'report').map((b) => b.item.agentId));
          const behind = queue.filter((q) => q.item.type === 'report' && failed.has(q.item.agentId));
          if (behind.length > 0) queue = queue.filter((q) => !(q.item.type === 'report' && failed.has(q.item.agentId)));
          for (const b of batch) b.done(err as Error);
          for (const q of behind) q.done(err as Error);
        }
      })().finally(() => {
        // The batch's first item is its oldest: the queue is in arrival order.
        opts.onBatch?.(batch.length, started - batch[0]!.at, performance.now() - started);
        inFlight--;
        writing -= batch.length;
        for (const b of batch) busy.delete(b.item.agentId);
        opts.onDepth?.(queue.length + writing);
        pump();
        // In the order they were refused; one that finds the queue full again asks again.
        if (waitingForRoom.length > 0 && queue.length + writing < maxQueued) {
          const waiting = waitingForRoom;
          waitingForRoom = [];
          for (const f of waiting) f();
        }
      });
    }
    if (inFlight === 0 && queue.length === 0) {
      for (const f of idle) f();
      idle = [];
    }
  }

  return {
    write(item, done) {
      if (queue.length + writing >= maxQueued) return false;
      queue.push({ item, done, at: performance.now() });
      opts.onDepth?.(queue.length + writing);
      // Wait for the end of this turn of the event loop: what arrived together commits together.
      if (!scheduled && inFlight < concurrency) {
        scheduled = true;
        setImmediate(pump);
      }
      return true;
    },
    onRoom(fn) {
      waitingForRoom.push(fn);
    },
    depth: () => queue.length + writing,
    drain() {
      if (inFlight === 0 && queue.length === 0) return Promise.resolve();
      return new Promise((resolve) => idle.push(resolve));
    },
  };
}
