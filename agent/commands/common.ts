// What every agent command shares: the I/O it is given, exit codes, the state folder, and the
// walk's cost options (--state, --max-rate, --max-bytes-rate, --nice, --threads, --cross-mounts) of the
// walking commands (manifest, scan, audit). Kept light: a scan or manifest run loads only this,
// its own command file and the stages it walks through.
import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { makeStateDir } from '../state-db.js';
import { QuicksandError } from '../../shared/errors.js';
import type { FingerprintOptions } from '../fingerprint/walk.js';
import { lowerPriority } from '../fingerprint/priority.js';
import { openStatCache } from '../fingerprint/stat-cache.js';
import { cleanReaderAhead, openCleanPaths } from '../fingerprint/clean-paths.js';
import { THREADS_AFTER } from '../fingerprint/walk-codec.js';
import type { WalkPool } from '../fingerprint/walk-pool.js';
import type { CleanPaths } from '../fingerprint/clean-paths.js';
import type { StatCache } from '../fingerprint/stat-cache.js';
import { openPackageCache } from '../collect/cache.js';
import type { PackageCache } from '../collect/cache.js';
import type { Root } from '../root.js';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** True when stderr is a terminal: progress lines are drawn only then. */
  interactive: boolean;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM): `run` then shuts down. */
  stopSignal?: Promise<void>;
}

export const EXIT_CLEAN = 0;
export const EXIT_DRIFT = 1;
export const EXIT_ERROR = 2;

export const DEFAULT_STATE_DIR = '/var/lib/quicksand';

// The walk's cost options, shared by every walking command (manifest, scan, audit).
/** More threads than this buys nothing on any host the agent runs on, and each holds memory. */
export const MAX_THREADS = 64;

export const COST_HELP = `  --max-rate N          walk at most N paths per second (default: no limit)
  --max-bytes-rate N    hash at most N bytes per second; K, M, G suffixes (default: no limit)
  --nice N              run at CPU nice level N (0-19) with a matching I/O priority;
                        19 reads only when the disk is otherwise idle
  --threads N           hash files on at most N threads, and walk on at most N beside
                        the main one (1-${MAX_THREADS}; default: one per core, here ${availableParallelism()}); each
                        thread holds memory of its own, so 1 is the smallest and a
                        first scan of a large tree then takes longer
  --cross-mounts        also walk other filesystems mounted below the tracked folders
                        (kernel pseudo filesystems such as /proc are never walked)
`;

export const COMMON = { help: { type: 'boolean', short: 'h' }, quiet: { type: 'boolean', short: 'q' } } as const;
// How much a walk may cost, and where its stat cache lives: the same on every walking command.
export const COST = {
  state: { type: 'string' },
  'max-rate': { type: 'string' },
  'max-bytes-rate': { type: 'string' },
  nice: { type: 'string' },
  threads: { type: 'string' },
  'cross-mounts': { type: 'boolean' },
} as const;

export interface CostArgs { state?: string; 'max-rate'?: string; 'max-bytes-rate'?: string; nice?: string; threads?: string; 'cross-mounts'?: boolean }

/**
 * `--threads N`: how many threads a walk may hash on, and walk on beside the main thread
 * (FingerprintOptions.concurrency and walkThreads); undefined when not given. `leftOut` says
 * what the command does without it.
 */
export function parseThreads(text: string | undefined, leftOut = 'one thread per core'): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_THREADS) {
    throw new QuicksandError('USAGE', `--threads expects a whole number from 1 to ${MAX_THREADS}, not "${text}" (1 holds the least memory; leave it out for ${leftOut})`);
  }
  return n;
}

/** Commands other than `ticket` take no argument. */
export function noArguments(positionals: string[], allowed = 0): void {
  if (positionals.length > allowed) throw new QuicksandError('USAGE', `unexpected argument "${positionals[allowed]}"`);
}

export function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new QuicksandError('USAGE', `${flag} is required`);
  return value;
}

/** Parses a count with an optional K/M/G suffix (powers of 1024). */
export function parseAmount(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)([kmg])?i?b?$/i.exec(text.trim());
  if (!m) throw new QuicksandError('USAGE', `${flag} expects a number like 5000 or 50M, not "${text}"`);
  const scale = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase() as 'k' | 'm' | 'g'] ?? 1;
  const value = Math.floor(Number(m[1]) * scale);
  if (value <= 0) throw new QuicksandError('USAGE', `${flag} must be above 0`);
  return value;
}

/**
 * The walk options every walking command shares: stat cache, budget, priority. A state folder
 * given with --state must work; the default one may not exist for a non-root user building an
 * image, and then the walk simply runs without a cache.
 */
export function walkOptions(args: CostArgs & { quiet?: boolean }, root: Root, io: CliIo): { options: FingerprintOptions; lastWalk: () => number | undefined; close: (filesSeen: number) => void } {
  const filesPerSec = parseAmount(args['max-rate'], '--max-rate');
  const bytesPerSec = parseAmount(args['max-bytes-rate'], '--max-bytes-rate');
  const threads = parseThreads(args.threads);
  let nice: number | undefined;
  if (args.nice !== undefined) {
    nice = Number(args.nice);
    if (!Number.isInteger(nice) || nice < 0 || nice > 19) throw new QuicksandError('USAGE', `--nice expects a level from 0 to 19, not "${args.nice}"`);
    for (const problem of lowerPriority(nice)) io.stderr(`quicksand-agent: warning: ${problem}\n`);
  }
  let cache: StatCache | undefined;
  let packages: PackageCache | undefined;
  try {
    cache = openStatCache(path.resolve(args.state ?? DEFAULT_STATE_DIR), root.dir === '' ? '/' : root.dir);
  } catch (err) {
    if (args.state !== undefined) throw err;
    if (!args.quiet) io.stderr(`quicksand-agent: warning: ${(err as Error).message}; every file is hashed\n`);
  }
  try {
    if (cache) packages = openPackageCache(path.resolve(args.state ?? DEFAULT_STATE_DIR), root.dir === '' ? '/' : root.dir);
  } catch {
    // only saves work: the package databases are read as without it
  }
  const options: FingerprintOptions = {
    ...(cache ? { cache } : {}),
    ...(packages ? { packages } : {}),
    ...(filesPerSec || bytesPerSec ? { budget: { ...(filesPerSec ? { filesPerSec } : {}), ...(bytesPerSec ? { bytesPerSec } : {}) } } : {}),
    ...(nice ? { nice } : {}),
    ...(threads === undefined ? {} : { concurrency: threads, walkThreads: threads }),
    ...(args['cross-mounts'] ? { crossMounts: true } : {}),
  };
  return {
    options,
    // A count of the cache's rows (~20 ms at 100k paths): made only for a progress line that shows it.
    lastWalk: () => cache?.size(),
    close: (filesSeen) => {
      packages?.close();
      if (!cache) return;
      if (filesSeen > 0) cache.prune(filesSeen);
      cache.close();
    },
  };
}

/**
 * The paths of `root` last found clean against the manifest `identity` ('': the one being
 * written), when the walk has a usable state folder (`walkOptions` opened its cache); else none.
 */
export function openCleanPathsFor(args: CostArgs, root: Root, identity: string, walk: FingerprintOptions): CleanPaths | undefined {
  if (walk.cache === undefined) return undefined;
  try {
    return openCleanPaths(path.resolve(args.state ?? DEFAULT_STATE_DIR), root.dir === '' ? '/' : root.dir, identity);
  } catch {
    return undefined; // only saves work: the walk compares every path instead
  }
}

/**
 * Walk threads for a scan of a root whose last walk was large (THREADS_AFTER paths remembered
 * clean), made now so they boot while the manifest and the package databases are read: on the
 * 106k-path tree the walk otherwise waited for them after those. None under a budget (the walk
 * takes no threads then) or without a state folder.
 */
export async function walkThreadsAhead(args: CostArgs, root: Root, walk: FingerprintOptions): Promise<WalkPool | undefined> {
  // As many as the walk will ask for (`fits`): --threads, else one per core.
  const threads = walk.walkThreads ?? availableParallelism();
  if (walk.cache === undefined || walk.budget !== undefined || threads === 0) return undefined;
  const reader = cleanReaderAhead(path.resolve(args.state ?? DEFAULT_STATE_DIR), root.dir === '' ? '/' : root.dir, THREADS_AFTER);
  if (reader === undefined) return undefined;
  const { WalkPool } = await import('../fingerprint/walk-pool.js');
  return new WalkPool({ threads, skip: Buffer.byteLength(root.dir), crossMounts: walk.crossMounts === true, reader });
}

export async function ensureStateDir(state: string): Promise<void> {
  makeStateDir(state);
}

export async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

export async function assertWritableDir(dir: string, flag: string): Promise<void> {
  try {
    if ((await stat(dir)).isDirectory()) return;
  } catch {
    // fall through
  }
  throw new QuicksandError('OUTPUT_UNWRITABLE', `${flag}: folder ${dir} does not exist`);
}
