import type { Database as Db, Statement } from 'better-sqlite3';
import type { Stats } from 'node:fs';
import { rowInserter } from '../sqlite.js';
import { openCacheDb } from '../state-db.js';
import { cacheKey } from './stat-cache.js';

/**
 * The paths last found to match their record in one manifest, each with the lstat it had then
 * (the git index's idea). A path whose lstat is still exactly that one still matches: any
 * write, chmod, chown, setxattr, rename-over or restore-with-old-mtime moves its ctime, as the
 * stat cache argues. A warm scan then skips everything but the walk's lstat for it.
 */
export interface CleanPaths {
  /** True when `path` (inside the root) was found clean with exactly this lstat. Fastest in walk order. */
  holds(path: Buffer, st: LstatFields): boolean;
  /** Queued: `path` was found clean with this lstat (`lstatTuple`). */
  remember(path: Buffer, tuple: Buffer): void;
  /**
   * Names the manifest that rows remembered under no name yet ('': the manifest command's own
   * records, before its file exists) were judged against.
   */
  adopt(identity: string): void;
  /** Writes what is queued. */
  flush(): void;
  /** Drops the rows of this root when far more are stored than the walk saw (gone paths pile up otherwise). */
  prune(filesSeen: number): void;
  close(): void;
  /**
   * Where another thread can read the same rows itself (its own read-only connection: WAL lets
   * readers run beside the writer); undefined when there is nothing to read or the database is
   * in memory.
   */
  threadReader(): CleanReaderSpec | undefined;
  /** True when at least `n` paths are remembered: the last walk was at least that large. */
  holdsAtLeast(n: number): boolean;
}

export interface CleanReaderSpec {
  file: string;
  root: number;
}

/** dev, ino, size, mtime, ctime (doubles), mode with the type bits, uid, gid (32 bits each). */
const TUPLE_BYTES = 52;

/** The lstat fields a verdict depends on (a `Stats` has them all). */
export type LstatFields = Pick<Stats, 'dev' | 'ino' | 'size' | 'mtimeMs' | 'ctimeMs' | 'mode' | 'uid' | 'gid'>;

/** The lstat fields a verdict depends on, as the bytes a row holds (little-endian). */
export function lstatTuple(st: LstatFields, into: Buffer = Buffer.allocUnsafe(TUPLE_BYTES)): Buffer {
  // Through a DataView, V8's own: Buffer's writeDoubleLE is JavaScript storing byte by byte, and a
  // warm walk makes one tuple per path (6k paths from a fresh process: 7.1 -> 1.3 ms).
  const view = tupleView(into);
  view.setFloat64(0, st.dev, true);
  view.setFloat64(8, st.ino, true);
  view.setFloat64(16, st.size, true);
  view.setFloat64(24, st.mtimeMs, true);
  view.setFloat64(32, st.ctimeMs, true);
  view.setUint32(40, st.mode >>> 0, true);
  view.setUint32(44, st.uid >>> 0, true);
  view.setUint32(48, st.gid >>> 0, true);
  return into;
}

/** The view of the buffer a caller reuses for every tuple, made once. */
let lastInto: Buffer | undefined;
let lastView: DataView | undefined;
function tupleView(into: Buffer): DataView {
  if (into !== lastInto) {
    lastInto = into;
    lastView = new DataView(into.buffer, into.byteOffset, TUPLE_BYTES);
  }
  return lastView!;
}

/** Opens (creating if needed) `<stateDir>/agent.db` and the clean paths of one root judged against `identity`. */
export function openCleanPaths(stateDir: string, root: string, identity: string): CleanPaths {
  return createCleanPaths(openCacheDb(stateDir), root, identity, true);
}

const BATCH = 2000;
const PAGE_MIN = 16;
const PAGE_MAX = 1024;

const SEPARATOR = Buffer.from([0, 0]);
/** Where a key's children start: its entries lie below. */
const CHILDREN = Buffer.from([0, 1]);
const SUFFIX = SEPARATOR.length + TUPLE_BYTES;
/** A row's entry as SQLite's `hex` gives it: a string per row is far cheaper to make than a Buffer. */
type Row = string;

/** Over an already open database. Rows judged against another manifest than `identity` are dropped. */
export function createCleanPaths(db: Db, rootDir: string, identity: string, ownsDb = false): CleanPaths {
  // entry: `cacheKey` (the walk's order, as in file_digests), two 0 bytes, the lstat tuple. One
  // blob per row: a page read makes one Buffer per path, not an array and two (1M paths: ~1 s
  // less). Two 0 bytes sort below anything a longer key holds there, so entries sort as keys do.
  // manifest: what the rows were judged against.
  db.exec(`
    CREATE TABLE IF NOT EXISTS clean_roots (id INTEGER PRIMARY KEY, dir TEXT NOT NULL UNIQUE, manifest TEXT NOT NULL DEFAULT '');
    CREATE TABLE IF NOT EXISTS clean_entries (root INTEGER NOT NULL, entry BLOB NOT NULL, PRIMARY KEY (root, entry)) WITHOUT ROWID;
  `);
  db.prepare('INSERT OR IGNORE INTO clean_roots (dir) VALUES (?)').run(rootDir);
  const root = db.prepare('SELECT id FROM clean_roots WHERE dir = ?').pluck().get(rootDir) as number;
  const storedFor = db.prepare('SELECT manifest FROM clean_roots WHERE id = ?').pluck();
  const setManifest = db.prepare('UPDATE clean_roots SET manifest = ? WHERE id = ?');
  const dropRoot = db.prepare('DELETE FROM clean_entries WHERE root = ?');
  const count = db.prepare('SELECT count(*) FROM clean_entries WHERE root = ?').pluck();
  const put = db.prepare('INSERT OR REPLACE INTO clean_entries (root, entry) VALUES (?, ?)');
  // The entries of one key: from the key with 00 00 up to the key with 00 01 (its children start there).
  const dropKey = db.prepare('DELETE FROM clean_entries WHERE root = ? AND entry >= ? AND entry < ?');
  const page = db.prepare(CLEAN_PAGE_SQL).pluck() as Statement<[number, Buffer, number], Row>;
  const nth = db.prepare('SELECT 1 FROM clean_entries WHERE root = ? LIMIT 1 OFFSET ?').pluck();
  const rebase = db.transaction((to: string) => {
    dropRoot.run(root);
    setManifest.run(to, root);
  });
  // Rows dropped now: a path remembered needs no older entry of its key removed.
  const fresh = storedFor.get(root) !== identity;
  if (fresh) rebase(identity);
  const stored = db.prepare('SELECT 1 FROM clean_entries WHERE root = ? LIMIT 1').pluck().get(root) !== undefined;
  const empty = identity === '' || !stored;

  let queue: Array<[Buffer, Buffer]> = [];
  let written = 0;
  const insert = rowInserter(db, 'INSERT OR REPLACE INTO clean_entries (root, entry)', 2);
  const writeBatch = db.transaction((rows: Array<[Buffer, Buffer]>) => {
    // A root with no rows when opened (a first manifest) has no older entry of a key to remove:
    // a walk remembers each path once.
    if (!stored) return insert(rows.map(([p, t]) => [root, Buffer.concat([cacheKey(p), SEPARATOR, t])]));
    for (const [p, t] of rows) {
      const key = cacheKey(p);
      dropKey.run(root, Buffer.concat([key, SEPARATOR]), Buffer.concat([key, CHILDREN]));
      put.run(root, Buffer.concat([key, SEPARATOR, t]));
    }
  });
  const flush = (): void => {
    if (queue.length === 0) return;
    const q = queue;
    queue = [];
    written += q.length;
    writeBatch(q);
  };

  const lookup = cleanLookup((from, size) => page.all(root, from, size));
  const tuple = Buffer.allocUnsafe(TUPLE_BYTES);
  return {
    holds(p, st) {
      return !empty && lookup(p, lstatTuple(st, tuple));
    },
    threadReader() {
      return empty || db.memory ? undefined : { file: db.name, root };
    },
    holdsAtLeast(n) {
      // The n-th row by the primary key: a short range read, not a count of them all.
      return !empty && n >= 1 && nth.get(root, n - 1) !== undefined;
    },
    remember(p, t) {
      queue.push([p, t]);
      if (queue.length >= BATCH) flush();
    },
    adopt(to) {
      flush();
      if (storedFor.get(root) === '') setManifest.run(to, root);
    },
    flush,
    prune(filesSeen) {
      flush();
      // Rows are only ever added by a walk that remembered some: a warm scan need not count them.
      if (written > 0 && (count.get(root) as number) > 2 * filesSeen + 1000) dropRoot.run(root);
    },
    close() {
      flush();
      if (ownsDb) db.close();
    },
  };
}

/**
 * Where walk threads can read the clean paths of `rootDir` before the manifest is known, when at
 * least `atLeast` are stored (the last walk was that large); else undefined. Whichever manifest
 * they were judged against: `openCleanPaths` drops them if it is another one, and the walk then
 * takes no threads.
 */
export function cleanReaderAhead(stateDir: string, rootDir: string, atLeast: number): CleanReaderSpec | undefined {
  let db: Db | undefined;
  try {
    db = openCacheDb(stateDir);
    const root = db.prepare('SELECT id FROM clean_roots WHERE dir = ?').pluck().get(rootDir) as number | undefined;
    if (root === undefined || db.prepare('SELECT 1 FROM clean_entries WHERE root = ? LIMIT 1 OFFSET ?').pluck().get(root, atLeast - 1) === undefined) return undefined;
    return { file: db.name, root };
  } catch {
    return undefined; // only saves time: the walk starts its threads itself
  } finally {
    db?.close();
  }
}

// Uint8Array's, not Buffer's (that one is JavaScript with checks around V8's).
const indexOf = Uint8Array.prototype.indexOf;

/** The page query of `clean_entries`, shared by the walk's own reader and the walk threads'. */
// Entries as hex text, decoded straight into the reader's one buffer: a Buffer per row (a
// malloc'd backing store each) made a walk thread's young collections dearer (89k rows: 65-105
// -> 52-66 ms of CPU).
export const CLEAN_PAGE_SQL = 'SELECT hex(entry) FROM clean_entries WHERE root = ? AND entry >= ? ORDER BY entry LIMIT ?';

/**
 * Answers whether a path (inside the root) holds a row with exactly this lstat tuple, reading
 * the rows as the stat cache reads: pages in key order, a probe key built in one reused buffer,
 * so look-ups in walk order read each page once. `page(from, size)` gives the next `size` rows
 * from key `from` on.
 */
export function cleanLookup(page: (from: Buffer, size: number) => Row[]): (p: Buffer, tuple: Buffer) => boolean {
  // A page's rows are decoded into one reused buffer at once: row buffers kept while the walk
  // went on outlived young collections, and at 1M paths tens of MB of dead rows waited in the
  // old generation (and the threads' malloc arenas) for a full collection.
  let bytes = Buffer.allocUnsafe(64 * 1024);
  const ends = new Int32Array(PAGE_MAX);
  let count = 0;
  let at = 0;
  let more = true;
  let size = PAGE_MIN;
  let scratch = Buffer.allocUnsafe(4096);
  /** The key the rows in `bytes` were read from: they are the first ones at or above it. */
  let from: Buffer | undefined;
  const read = (length: number): void => {
    from = Buffer.from(scratch.subarray(0, length));
    const rows = page(from, size);
    // One decode of the page joined, not one call per row.
    let end = 0;
    for (let i = 0; i < rows.length; i++) {
      end += rows[i]!.length >>> 1;
      ends[i] = end;
    }
    if (bytes.length < end) bytes = Buffer.allocUnsafe(2 * end);
    bytes.write(rows.join(''), 0, 'hex');
    count = rows.length;
    at = 0;
    more = rows.length === size;
    size = Math.min(2 * size, PAGE_MAX);
  };
  /** The row before `at` (or the key the page was read from) lies below the key in scratch[0, length). */
  const belowKey = (length: number): boolean => {
    if (at > 0) return bytes.compare(scratch, 0, length, at === 1 ? 0 : ends[at - 2]!, ends[at - 1]! - SUFFIX) < 0;
    return from !== undefined && from.compare(scratch, 0, length) <= 0;
  };
  /**
   * The end in `bytes` of the row of the key in scratch[0, length); -1 when it has none. The rows
   * are passed in order from just after where the last look-up stopped; a key below that point
   * (a look-up out of walk order) reads again from the key. In walk order a path known clean has
   * the next row: one comparison per look-up, where a copy and a comparison with the last key
   * came before it.
   */
  const find = (length: number): number => {
    for (;;) {
      let passed = false;
      while (at < count) {
        const start = at === 0 ? 0 : ends[at - 1]!;
        const end = ends[at]!;
        const order = bytes.compare(scratch, 0, length, start, end - SUFFIX);
        if (order === 0) {
          at++;
          return end;
        }
        if (order > 0) break;
        at++;
        passed = true;
      }
      if (!passed && !belowKey(length)) {
        size = PAGE_MIN;
        read(length);
        continue;
      }
      if (at < count || !more) return -1;
      read(length);
    }
  };
  return (p, tuple) => {
    if (scratch.length <= p.length) scratch = Buffer.allocUnsafe(2 * p.length + 1);
    // The key: the path with each `/` as 0. Copied, and the few slashes found, by V8's own typed
    // array methods (a sentinel slash ends the search): a loop here over every byte of every
    // path was most of a look-up while the code is not optimised yet, as in a short scan.
    scratch.set(p);
    scratch[p.length] = 0x2f;
    for (let i = indexOf.call(scratch, 0x2f); i < p.length; i = indexOf.call(scratch, 0x2f, i + 1)) scratch[i] = 0;
    const end = find(p.length);
    return end >= 0 && tuple.compare(bytes, end - TUPLE_BYTES, end) === 0;
  };
}
