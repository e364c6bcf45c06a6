// Progress where a person waits (a first baseline, a long manifest or scan). The walk only
// counts (onProgress stores two numbers); a timer prints: a live line on a terminal, one line
// every few seconds when stderr is a log or a pipe (the daemon under systemd, `npm start`).
import { stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import type { CliIo } from './common.js';

const LIVE_EVERY_MS = 250;
const LOG_EVERY_MS = 5_000;

export interface ProgressLine {
  verb: string;
  files: number;
  bytes: number;
  elapsedMs: number;
  /** Paths the walk is expected to see (the last walk of this root, its filesystem's inodes). */
  expected?: number | undefined;
}

/** `scan: 8,123 of ~16,000 paths (51%), 120 MiB hashed, 6 s; about 6 s left`. Pure. */
export function formatProgress(p: ProgressLine): string {
  const n = (x: number): string => x.toLocaleString('en-US');
  const secs = (ms: number): string => (ms < 90_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`);
  const mib = `${n(Math.round(p.bytes / 1024 / 1024))} MiB hashed`;
  if (p.expected === undefined || p.expected <= 0) return `${p.verb}: ${n(p.files)} paths, ${mib}, ${secs(p.elapsedMs)}`;
  const share = p.files / p.expected;
  const left = share >= 1 ? 'almost done' : p.files === 0 ? 'estimating' : `about ${secs((p.elapsedMs * (p.expected - p.files)) / p.files)} left`;
  return `${p.verb}: ${n(p.files)} of ~${n(p.expected)} paths (${Math.min(99, Math.floor(share * 100))}%), ${mib}, ${secs(p.elapsedMs)}; ${left}`;
}

export interface Progress {
  /** For the walk: stores the counts, prints nothing. */
  onProgress?: (files: number, bytes: number) => void;
  /** Stops the timer and clears the live line. */
  stop(): void;
}

export function startProgress(io: CliIo, quiet: boolean | undefined, verb: string, expected: number | undefined, everyMs?: number): Progress {
  if (quiet) return { stop: () => {} };
  const t0 = Date.now();
  let files = 0;
  let bytes = 0;
  const line = (): string => formatProgress({ verb, files, bytes, elapsedMs: Date.now() - t0, expected });
  const timer = setInterval(
    () => io.stderr(io.interactive ? `\r${line()}\x1b[K` : `${line()}\n`),
    everyMs ?? (io.interactive ? LIVE_EVERY_MS : LOG_EVERY_MS),
  );
  timer.unref();
  return {
    onProgress: (f, b) => {
      files = f;
      bytes = b;
    },
    stop: () => {
      clearInterval(timer);
      if (io.interactive) io.stderr('\r\x1b[K');
    },
  };
}

/**
 * How many paths a walk of `root` will see, when that can be known: the last walk's count (the
 * stat cache), else the inodes in use of the filesystems the tracked paths are (each mounted on
 * its own: `/usr` on a partition of its own holds nothing else). Undefined otherwise: a tracked
 * path that shares its filesystem with untracked folders (`/usr` beside `/var` and `/home` on
 * `/`) would count all their inodes too, 1.8M where the walk sees 120k on a real host.
 */
export async function expectedPaths(rootDir: string, lastWalk: number | undefined, tracked: readonly string[]): Promise<number | undefined> {
  if (lastWalk !== undefined && lastWalk > 0) return lastWalk;
  const dir = rootDir === '' ? '/' : rootDir;
  try {
    let used = 0;
    const seen = new Set<number>();
    for (const t of tracked) {
      const top = path.join(dir, t);
      const here = await stat(top).catch(() => undefined);
      if (here === undefined || !here.isDirectory()) continue;
      const parent = await stat(path.dirname(top));
      if (here.dev === parent.dev) return undefined;
      if (seen.has(here.dev)) continue;
      seen.add(here.dev);
      const fs = await statfs(top);
      used += fs.files - fs.ffree;
    }
    return used > 0 ? used : undefined;
  } catch {
    return undefined;
  }
}
