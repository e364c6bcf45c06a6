// Groups what arrives while the previous batch is being written into the next transaction: one
// fsync for hundreds of reports instead of one each, and batches grow by themselves when the disk
// is slow. One batch at a time, in arrival order, so an agent's reports commit in sequence.
import type { Ingest, IngestItem, IngestResult } from '../store/types.js';

export type Done = (result: IngestResult | Error) => void;

export interface BatchWriter {
  /** False (and `done` never called) when the queue is full: the caller answers SERVER_BUSY. */
  write(item: IngestItem, done: Done): boolean;
  /** Items queued or being written. */
  depth(): number;
  /** Resolves when everything queued so far has been written (at shutdown). */
  drain(): Promise<void>;
}

/** Items the queue holds at most: reports of agents that wait for acks, not an unbounded pile. */
export const MAX_INGEST_QUEUE = 20_000;

export function createBatchWriter(ingest: Ingest, opts: { maxBatch?: number; maxQueued?: number; onDepth?: (depth: number) => void } = {}): BatchWriter {
  const maxBatch = opts.maxBatch ?? 2000;
  const maxQueued = opts.maxQueued ?? MAX_INGEST_QUEUE;
  let writing = 0;
  let queue: { item: IngestItem; done: Done }[] = [];
  let scheduled = false;
  let inFlight: Promise<void> | null = null;
  let idle: (() => void)[] = [];

  function pump(): void {
    scheduled = false;
    if (inFlight !== null) return;
    if (queue.length === 0) {
      for (const f of idle) f();
      idle = [];
      return;
    }
    const batch = queue.slice(0, maxBatch);
    queue = queue.slice(batch.length);
    writing = batch.length;
    inFlight = (async () => {
      try {
        const results = await ingest.ingestBatch(batch.map((b) => b.item));
        batch.forEach((b, i) => b.done(results[i]!));
      } catch (err) {
        // Nothing of the batch is committed (the transaction rolled back): nobody gets an ack,
        // and the agents send again from their outboxes.
        for (const b of batch) b.done(err as Error);
      }
    })().finally(() => {
      inFlight = null;
      writing = 0;
      opts.onDepth?.(queue.length);
      pump();
    });
  }

  return {
    write(item, done) {
      if (queue.length + writing >= maxQueued) return false;
      queue.push({ item, done });
      opts.onDepth?.(queue.length + writing);
      // Wait for the end of this turn of the event loop: what arrived together commits together.
      if (!scheduled && inFlight === null) {
        scheduled = true;
        setImmediate(pump);
      }
      return true;
    },
    depth: () => queue.length + writing,
    drain() {
      if (inFlight === null && queue.length === 0) return Promise.resolve();
      return new Promise((resolve) => idle.push(resolve));
    },
  };
}
