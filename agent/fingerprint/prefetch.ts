/** Paths the walk may run ahead while the package databases are still being read. */
export const PREFETCH_PATHS = 50_000;

/** A walk already under way: read it with `for await`, or `close` it unread. */
export interface Prefetched<T> extends AsyncIterable<T[]> {
  close(): Promise<void>;
}

/**
 * Starts pulling `batches` now and keeps what it gets (at most `limit` items) until `until`
 * settles; reading it then hands everything on in order. The walk makes progress while its
 * consumer cannot take it yet, and memory stays bounded.
 */
export function prefetch<T>(batches: AsyncIterable<T[]>, until: Promise<unknown>, limit: number): Prefetched<T> {
  const it = batches[Symbol.asyncIterator]();
  let settled = false;
  let finished = false;
  let count = 0;
  const ahead: T[][] = [];
  const pulling = (async () => {
    while (!settled && count < limit) {
      const r = await it.next();
      if (r.done) {
        finished = true;
        return;
      }
      ahead.push(r.value);
      count += r.value.length;
    }
  })();
  pulling.catch(() => {}); // surfaced to the reader below, or dropped with an unread walk
  const stop = async (): Promise<void> => {
    await until.catch(() => {});
    settled = true;
    await pulling;
  };
  return {
    async *[Symbol.asyncIterator]() {
      try {
        await stop();
        for (const b of ahead.splice(0)) yield b;
        if (finished) return;
        for (;;) {
          const r = await it.next();
          if (r.done) return;
          yield r.value;
        }
      } finally {
        // A reader that stops early (an error, a break) still ends the walk and its threads.
        await it.return?.(undefined);
      }
    },
    async close() {
      await stop().catch(() => {});
      await it.return?.(undefined);
    },
  };
}
