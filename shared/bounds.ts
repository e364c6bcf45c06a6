// Bounds every schema of input from outside uses (frames, manifests, API bodies), so no field
// can grow without limit and a new field gets a bound by using these. Pure.
import { z } from 'zod';
import { LIMITS } from './limits.js';

export { LIMITS } from './limits.js';

/** A string of at most `max` characters (default: a name). */
export const boundedString = (max: number = LIMITS.name): z.ZodString => z.string().max(max, `at most ${max} characters`);

/** An array of at most `max` items. */
export const boundedArray = <T extends z.ZodType>(item: T, max: number = LIMITS.items): z.ZodArray<T> =>
  z.array(item).max(max, `at most ${max} items`);

/** A string-keyed record of at most `max` keys. */
export const boundedRecord = <K extends z.core.$ZodRecordKey, V extends z.ZodType>(key: K, value: V, max: number = LIMITS.keys) =>
  z.record(key, value).refine((r) => Object.keys(r).length <= max, { message: `at most ${max} keys` });

/**
 * How deep `value` nests, counting only up to `limit + 1`: iterative, so a hostile document that
 * nests a million levels costs one pass and no stack. Schemas recurse with the data; this runs first.
 */
export function nestingDepth(value: unknown, limit: number = LIMITS.depth): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d + 1 > deepest) deepest = d + 1;
    if (deepest > limit) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push([child, d + 1]);
    }
  }
  return deepest;
}

/** Null when `value` nests at most `limit` levels, else a message naming the limit. */
export function depthProblem(value: unknown, limit: number = LIMITS.depth): string | null {
  return nestingDepth(value, limit) > limit ? `nests deeper than ${limit} levels` : null;
}
