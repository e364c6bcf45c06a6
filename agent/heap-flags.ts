import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

const applied: string[] = [];

/** V8's flags of the daemon (`run`): why each, in main.ts, which sets them; bench:in-process runs under them too. */
export const DAEMON_V8_FLAGS = '--no-opt --no-maglev --no-sparkplug --max-semi-space-size=1';

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

/**
 * The young generation of the walking commands (manifest, scan, audit), per semi-space. Held at
 * 1 MB, a walk's records, jobs and stats outlived most young collections and were promoted,
 * garbage in the old generation: at 4 MB, measured at 1M paths, a warm scan's peak RSS 140 -> 107
 * MB (18.3 -> 17.2 s), a cold manifest's 131 -> 142 MB (its time within the noise); on the
 * minbase (8 interleaved rounds) a cold manifest 0.774 -> 0.723 s, a warm scan 0.647 -> 0.611 s.
 * The daemon's children keep 1 MB (isolated.ts): at 4 MB the index load alone took 12.7 -> 10.2 s,
 * but the daemon's start to its first full scan at 1M did not improve (57.5 -> 62.6 s, peak with
 * the scan child 172 -> 180 MB, one run each).
 */
export const WALK_SEMI_SPACE_MB = 4;

/**
 * Lets the young generation grow as V8 grows it (doubling) until a semi-space holds
 * `semiSpaceMb`, then holds it there. Set at run time, V8's size flags come too late (the heap
 * is laid out before the first line runs); only its growth factor is read at every growth.
 */
export function growYoungGenerationTo(semiSpaceMb: number): void {
  setHeapFlags('--semi-space-growth-factor=2');
  // Both semi-spaces count in new_space's size.
  const grown = (): boolean => (getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? Infinity) >= 2 * semiSpaceMb * 1024 * 1024;
  const watch = new PerformanceObserver(() => {
    if (!grown()) return;
    setHeapFlags('--semi-space-growth-factor=1');
    watch.disconnect();
  });
  watch.observe({ entryTypes: ['gc'] });
}
