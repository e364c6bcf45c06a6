// A synchronous backend behind the asynchronous store interface. better-sqlite3 answers at once
// and a transaction must never await, so the SQLite store is written synchronously and exposed
// through this one wrapper instead of every method being written twice.

/** Where a port's method does not return a Promise, the synchronous shape says so in the error. */
interface NotAsync {
  'error: a method of the store interface must return a Promise': never;
}

/** One member of a port, answering synchronously; distributes over `| undefined` (optional members). */
type SynchronousMember<V> = V extends (...args: infer A) => Promise<infer R>
  ? (...args: A) => R
  : V extends (...args: never[]) => unknown
    ? NotAsync
    : V extends object
      ? Synchronous<V>
      : V;

/**
 * The shape a synchronous backend implements for the async port `T`: the same methods with the
 * same parameters, answering with the value itself; sub-objects (triage, baselines …) likewise.
 */
export type Synchronous<T> = { [K in keyof T]: SynchronousMember<T[K]> };

/**
 * The port over a synchronous implementation: each method answers with a Promise (a throw becomes
 * a rejection), sub-objects are wrapped the same way. One microtask per call, nothing more.
 */
export function asyncPort<T extends object>(sync: Synchronous<T>): T {
  const port: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(sync) as [string, unknown][]) {
    if (typeof value === 'function') {
      port[key] = async (...args: unknown[]): Promise<unknown> => Reflect.apply(value, sync, args);
    } else if (typeof value === 'object' && value !== null) {
      port[key] = asyncPort(value as Synchronous<object>);
    } else {
      port[key] = value;
    }
  }
  return port as T;
}
