// Many lookups of one kind by key (agent tokens at a reconnect storm) as few statements: keys asked
// while `concurrency` statements are running wait in memory and go together in the next one. A
// storm of 5,000 agents then costs a few dozen `= ANY($1)` lookups on a small pool instead of
// 5,000 callers queueing for its connections (and timing out there). Nothing is cached: each
// answer is read after it was asked for, so a revocation counts from its commit on.

export interface LookupBatcher<K, V> {
  /** The row for `key` (undefined when there is none). */
  get(key: K): Promise<V | undefined>;
}

export function createLookupBatcher<K, V>(fetch: (keys: K[]) => Promise<Map<K, V>>, opts: { concurrency: number; maxKeys: number }): LookupBatcher<K, V> {
  let waiting = new Map<K, Array<{ resolve: (v: V | undefined) => void; reject: (err: unknown) => void }>>();
  let running = 0;

  function next(): void {
    while (running < opts.concurrency && waiting.size > 0) {
      // The first maxKeys keys asked; the rest wait for the next statement.
      const taken = new Map<K, Array<{ resolve: (v: V | undefined) => void; reject: (err: unknown) => void }>>();
      for (const [k, w] of waiting) {
        if (taken.size >= opts.maxKeys) break;
        taken.set(k, w);
      }
      for (const k of taken.keys()) waiting.delete(k);
      if (waiting.size === 0) waiting = new Map();
      running++;
      fetch([...taken.keys()]).then(
        (found) => {
          for (const [k, ws] of taken) for (const w of ws) w.resolve(found.get(k));
        },
        (err: unknown) => {
          for (const ws of taken.values()) for (const w of ws) w.reject(err);
        },
      ).finally(() => {
        running--;
        next();
      });
    }
  }

  return {
    get(key) {
      return new Promise((resolve, reject) => {
        const ws = waiting.get(key);
        if (ws === undefined) waiting.set(key, [{ resolve, reject }]);
        else ws.push({ resolve, reject });
        // Callers of this turn of the event loop join one statement.
        if (running < opts.concurrency) queueMicrotask(next);
      });
    },
  };
}
