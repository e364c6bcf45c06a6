// The adapter that serves a synchronous backend through the async interface. The type checks
// below are part of the test: `npx tsc` fails when one of the @ts-expect-error lines compiles.
import { describe, expect, it } from 'vitest';
import { asyncPort } from './async-adapter.js';
import type { Synchronous } from './async-adapter.js';

interface Port {
  count(n: number): Promise<number>;
  refuse(): Promise<void>;
  child: { name(suffix?: string): Promise<string> };
}

describe('asyncPort', () => {
  it('answers every method, sub-objects too, with a Promise, and turns a throw into a rejection', async () => {
    let calls = 0;
    const port = asyncPort<Port>({
      count: (n) => (calls += n),
      refuse: () => {
        throw new Error('refused');
      },
      child: { name: (suffix = '') => `child${suffix}` },
    });
    const counted = port.count(2);
    expect(counted).toBeInstanceOf(Promise);
    // The synchronous implementation ran at once; only the answer waits for a microtask.
    expect(calls).toBe(2);
    expect(await counted).toBe(2);
    const refused = port.refuse();
    expect(refused).toBeInstanceOf(Promise);
    await expect(refused).rejects.toThrow('refused');
    expect(await port.child.name('-1')).toBe('child-1');
  });

  it('cannot be given an implementation that misses a method, and refuses a port with a synchronous method', () => {
    // @ts-expect-error `child` is missing
    const missing: Synchronous<Port> = { count: (n) => n, refuse: () => undefined };
    // @ts-expect-error an implementation answers with the value, not a Promise
    const stillAsync: Synchronous<Port> = { count: async (n: number) => n, refuse: () => undefined, child: { name: () => '' } };
    interface SyncSlipped {
      listed(): string[];
    }
    // @ts-expect-error every method of a port must return a Promise, or nothing can implement it
    const slipped: Synchronous<SyncSlipped> = { listed: () => [] };
    expect([missing, stillAsync, slipped]).toHaveLength(3);
  });
});
