// Groups what arrives while the previous batch is being written into the next transaction: one
// fsync for hundreds of reports instead of one each, and batches grow by themselves when the disk
// is slow. One batch at a time, in arrival order, so an agent's reports commit in sequence.
import type { IngestItem, IngestResult } from '../store/types.js';

export type Done = (result: IngestResult | Error) => void;

export interface BatchWriter {
  write(item: IngestItem, done: Done): void;
  /** Resolves when everything queued so far has been written (at shutdown). */
  drain(): Promise<void>;
}

export interface BatchIngest {
  ingestBatch(items: readonly IngestItem[]): IngestResult[] | Promise<IngestResult[]>;
}

export function createBatchWriter(ingest: BatchIngest, opts: { maxBatch?: number } = {}): BatchWriter {
  const maxBatch = opts.maxBatch ?? 2000;
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
      pump();
    });
  }

  return {
    write(item, done) {
      queue.push({ item, done });
      // Wait for the end of this turn of the event loop: what arrived together commits together.
      if (!scheduled && inFlight === null) {
        scheduled = true;
        setImmediate(pump);
      }
    },
    drain() {
      if (inFlight === null && queue.length === 0) return Promise.resolve();
      return new Promise((resolve) => idle.push(resolve));
    },
  };
}
