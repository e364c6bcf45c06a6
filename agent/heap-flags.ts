import { setFlagsFromString } from 'node:v8';

const applied: string[] = [];

/** Sets V8 flags for this process and remembers them, so `reapplyHeapFlags` can restore them. */
export function setHeapFlags(flags: string): void {
  setFlagsFromString(flags);
  applied.push(flags);
}

/**
 * Starting a worker thread sets V8's flags back to the command line's (checked on Node 20: the
 * young generation grew to 32 MB again once the hashing threads were up), so the pool calls
 * this when a thread comes online.
 */
export function reapplyHeapFlags(): void {
  for (const flags of applied) setFlagsFromString(flags);
}
