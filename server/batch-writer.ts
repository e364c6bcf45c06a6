// Groups what arrives during one turn of the event loop into one transaction: one fsync for a
// hundred reports instead of one each, which is what lets one process carry a large fleet.
import type { Ingest, IngestItem, IngestResult } from './store/types.js';

export type Done = (result: IngestResult | Error) => void;

export interface BatchWriter {
  write(item: IngestItem, done: Done): void;
  /** Writes whatever is queued now (at shutdown). */
  flush(): void;
}

export function createBatchWriter(ingest: Ingest, opts: { maxBatch?: number; onBatch?: (results: IngestResult[], items: readonly IngestItem[]) => void } = {}): BatchWriter {
  const maxBatch = opts.maxBatch ?? 1000;
  let queue: { item: IngestItem; done: Done }[] = [];
  let scheduled = false;

  function flush(): void {
    scheduled = false;
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      let results: IngestResult[];
      try {
        results = ingest.ingestBatch(batch.map((b) => b.item));
      } catch (err) {
        // Nothing of the batch is committed (the transaction rolled back): nobody gets an ack,
        // and the agents send again from their outboxes.
        for (const b of batch) b.done(err as Error);
        continue;
      }
      opts.onBatch?.(results, batch.map((b) => b.item));
      batch.forEach((b, i) => b.done(results[i]!));
    }
  }

  return {
    write(item, done) {
      queue.push({ item, done });
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    flush,
  };
}
