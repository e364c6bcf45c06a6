import { lstatSync } from 'node:fs';

/** The fields of a path's lstat that the walk uses (`fs.Stats` has them too). */
export interface PathStat {
  dev: number;
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  /** Milliseconds as `fs.Stats` gives them: sec * 1e3 + nsec / 1e6. */
  mtimeMs: number;
  ctimeMs: number;
}

/** Node's own synchronous lstat: it fills one shared array of numbers and makes no object. */
interface FsBinding {
  lstat(path: string | Buffer, useBigint: false, req: undefined, throwIfNoEntry: boolean): Float64Array | undefined;
}

// Where Node's stat array keeps each field (src/node_file.h, the same on Node 20 and 22).
const DEV = 0;
const MODE = 1;
const NLINK = 2;
const UID = 3;
const GID = 4;
const INO = 7;
const SIZE = 8;
const MTIME_S = 12;
const MTIME_NS = 13;
const CTIME_S = 14;
const CTIME_NS = 15;

function fromArray(a: Float64Array): PathStat {
  return {
    dev: a[DEV]!,
    ino: a[INO]!,
    mode: a[MODE]!,
    nlink: a[NLINK]!,
    uid: a[UID]!,
    gid: a[GID]!,
    size: a[SIZE]!,
    // The formula of fs.Stats, so the stat cache compares equal doubles whichever made them.
    mtimeMs: a[MTIME_S]! * 1e3 + a[MTIME_NS]! / 1e6,
    ctimeMs: a[CTIME_S]! * 1e3 + a[CTIME_NS]! / 1e6,
  };
}

const same = (a: PathStat, b: PathStat): boolean =>
  a.dev === b.dev && a.ino === b.ino && a.mode === b.mode && a.nlink === b.nlink && a.uid === b.uid && a.gid === b.gid && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;

/**
 * The binding when it answers exactly as `lstatSync` does here, else undefined (another
 * runtime, another layout). `fs.lstatSync` makes a Stats object and four Dates per call: in a
 * warm scan of 106k paths that was 85 of 470 MB allocated, the largest single source of
 * garbage. Checked once per process on real paths, so a layout that differs falls back.
 */
function probe(): FsBinding | undefined {
  try {
    const binding = (process as unknown as { binding(name: string): FsBinding }).binding('fs');
    if (typeof binding.lstat !== 'function') return undefined;
    for (const p of ['/', process.execPath]) {
      const a = binding.lstat(p, false, undefined, true);
      if (!(a instanceof Float64Array) || !same(fromArray(a), lstatSync(p))) return undefined;
    }
    if (binding.lstat('/nonexistent/quicksand-probe', false, undefined, false) !== undefined) return undefined;
    return binding;
  } catch {
    return undefined;
  }
}

const binding = probe();

/** lstat of `p`; undefined when it does not exist; throws (with the errno `code`) otherwise. */
export function lstatPath(p: string | Buffer): PathStat | undefined {
  if (binding === undefined) return lstatSync(p, { throwIfNoEntry: false });
  const a = binding.lstat(p, false, undefined, false);
  return a === undefined ? undefined : fromArray(a);
}

/** Whether the allocation-free path is in use (for tests). */
export const lstatFromBinding = binding !== undefined;
