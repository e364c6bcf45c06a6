import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface IsolatedResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * What every child gets of V8's own threads: one background thread for its compilers and collector instead of one
 * per core (Node's --v8-pool-size), and V8 tuned for size over speed (smaller heap limits, a
 * collector that gives pages back sooner). Each of V8's threads keeps a stack and allocator
 * arenas, and the child's peak sits on top of the daemon's. At 1M paths, the cold scan child on
 * one hashing thread (run --threads), peak RSS from /proc/PID/smaps: 102.7 / 103.7 MB in 26.7 /
 * 29.0 s -> 95.1 / 95.7 / 99.4 MB in 31.2 / 31.4 / 30.3 s (V8's pages 32-33 -> 29.5 MB, the
 * other threads' arenas 12-14 -> 9 MB). No help found in: a 512 KB SQLite page cache for the
 * cache database (95.3 MB), --heap-growing-percent=25 (95.1), MALLOC_ARENA_MAX=1 (95.9: the
 * arenas' pages moved to the main heap), --single-threaded (95.5). Without TurboFan (--no-opt)
 * the child peaks at 85.0 MB, but its cold scan takes 57 s: see `run --threads` for speed.
 */
const CHILD_SIZE = ['--v8-pool-size=1', '--optimize-for-size'];
/**
 * V8 flags of every child, on its command line so they hold in its threads too. Its old
 * generation grows to 1.5x what survived the last full collection, not to V8's default of up to
 * 4x: a scan's live heap is small and flat in the tree size (17-19 MB at 1M paths, measured), the
 * rest of its old generation was garbage of walk and manifest batches waiting for a collection.
 * A proportion, not a cap: a host whose package databases need a larger heap gets it, and never
 * runs out of heap where it did not before. Its young generation stays at 1 MB a semi-space, this
 * cap holding even where main.ts lets a walking command's grow to 4 MB (see heap-flags.ts for
 * why not here; the index loader, an entry of its own, grew it to 32 MB).
 * At 1M paths: cold scan peak RSS 163 -> 112 MB, warm 84 MB, no slower beyond the noise of a
 * shared machine; index load 116 -> 71 MB (with its page cache, see index-loader.ts).
 */
export const CHILD_HEAP = ['--heap-growing-percent=50', '--max-semi-space-size=1', ...CHILD_SIZE];

/**
 * glibc's allocator of every child, fixed: a block of 32 KiB or more gets pages of its own, given
 * back the moment it is freed. Left alone, glibc raises that threshold to the largest block freed
 * so far (up to 32 MiB), and a scan's read and manifest buffers then come from the main heap,
 * whose freed middle never goes back. At 1M paths, the cold scan child's first 14 s (two runs
 * each): its main heap 8.5-9.4 -> 6.5-6.6 MB, median RSS 87.3-87.7 -> 84.2-84.4 MB.
 */
const CHILD_MALLOC = 'glibc.malloc.mmap_threshold=32768:glibc.malloc.trim_threshold=131072';

/** The environment of a child: `env` with the allocator settings added to any the host set (pure). */
export function childEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const own = env.GLIBC_TUNABLES;
  // A host's own setting of the same tunable comes last, so it wins.
  return { ...env, GLIBC_TUNABLES: own === undefined || own === '' ? CHILD_MALLOC : `${CHILD_MALLOC}:${own}` };
}

/**
 * Runs one agent command (a scan, say) in a child process of its own. A long-running agent that
 * scans now and then keeps only its small idle footprint between scans, instead of the
 * high-water mark of the largest scan it ever ran: a worker thread was tried, but the memory
 * its heap and allocator arenas took stays with the process after it ends (tried again at 1M
 * paths, index load and scan in threads: peak 169 MB, but the idle daemon then held 88 MB, 40 MB
 * anonymous, against 65/17.5 MB; and the scan ran under the daemon's flags without optimising
 * compilers, 45 -> 100 s cold).
 */
export function runIsolated(argv: string[], opts: { env?: NodeJS.ProcessEnv; entry?: string; beforeSpawn?: () => void } = {}): Promise<IsolatedResult> {
  const self = import.meta.url;
  const ts = self.endsWith('.ts');
  // `entry`: another script than the agent's CLI, as a path from this folder without extension.
  const main = fileURLToPath(new URL(`${opts.entry ?? '../main'}${ts ? '.ts' : '.js'}`, self));
  // The child's peak sits on top of what the caller holds then: the daemon compacts its heap first.
  opts.beforeSpawn?.();
  // Sources run through tsx (tests, dev); the built agent needs no loader.
  const child = spawn(process.execPath, [...CHILD_HEAP, ...(ts ? ['--import', 'tsx'] : []), main, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv(opts.env ?? process.env) });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code: code ?? (signal ? 2 : 0), stdout, stderr }));
  });
}
