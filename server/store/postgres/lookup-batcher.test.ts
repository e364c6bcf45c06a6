// Lookups asked together go in few statements, each caller gets its own key's answer, and a failed
// statement fails only the callers whose keys it carried.
import { describe, expect, it } from 'vitest';
import { createLookupBatcher } from './lookup-batcher.js';

function countingFetch(fail?: (keys: number[]) => boolean) {
  const calls: number[][] = [];
  let running = 0;
  let maxRunning = 0;
  const fetch = async (keys: number[]): Promise<Map<number, string>> => {
    calls.push(keys);
    maxRunning = Math.max(maxRunning, ++running);
    await new Promise((r) => setTimeout(r, 5));
    running--;
    if (fail?.(keys)) throw new Error('database away');
    return new Map(keys.filter((k) => k % 7 !== 0).map((k) => [k, `row ${k}`]));
  };
  return { fetch, calls, maxRunning: () => maxRunning };
}

describe('createLookupBatcher', () => {
  it('answers a storm of 5,000 lookups in a few statements, never more than `concurrency` at once', async () => {
    const f = countingFetch();
    const lookups = createLookupBatcher(f.fetch, { concurrency: 2, maxKeys: 500 });
    const keys = Array.from({ length: 5000 }, (_, i) => i);
    const answers = await Promise.all(keys.map((k) => lookups.get(k)));
    expect(answers).toEqual(keys.map((k) => (k % 7 === 0 ? undefined : `row ${k}`)));
    expect(f.calls.length).toBeLessThanOrEqual(12);
    expect(Math.max(...f.calls.map((c) => c.length))).toBeLessThanOrEqual(500);
    expect(f.maxRunning()).toBeLessThanOrEqual(2);
  });

  it('asks a key once however many callers wait for it, and reads it afresh for a caller that comes later', async () => {
    const f = countingFetch();
    const lookups = createLookupBatcher(f.fetch, { concurrency: 1, maxKeys: 500 });
    expect(await Promise.all([lookups.get(1), lookups.get(1), lookups.get(2)])).toEqual(['row 1', 'row 1', 'row 2']);
    expect(await lookups.get(1)).toBe('row 1');
    // Nothing is cached: the later caller's lookup is a statement of its own.
    expect(f.calls.flat().filter((k) => k === 1).length).toBe(2);
  });

  it('rejects the callers of a failed statement only; the next statement runs', async () => {
    const f = countingFetch((keys) => keys.includes(13));
    const lookups = createLookupBatcher(f.fetch, { concurrency: 1, maxKeys: 2 });
    const results = await Promise.allSettled([lookups.get(1), lookups.get(2), lookups.get(13), lookups.get(4), lookups.get(5)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'rejected', 'fulfilled']);
  });
});
