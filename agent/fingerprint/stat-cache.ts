import type { Database as Db, Statement } from 'better-sqlite3';
import { rowInserter } from '../sqlite.js';
import { openCacheDb } from '../state-db.js';
import type { SecurityXattrs } from './xattrs.js';

/** The stat of a regular file that decides whether its cached digest still holds. */
export interface FileStat {
  dev: number;
  ino: number;
  size: number;
  /** Milliseconds as lstat gives them (a double: exact to well under a microsecond). */
  mtimeMs: number;
  ctimeMs: number;
}

/** What the cache holds of a file whose stat did not change. */
export interface CachedFile {
  sha256: string;
  /** Its security xattrs, read under the same ctime as the digest; null: not known, read them. */
  xattrs: SecurityXattrs | null;
}

/**
 * Digests (and security xattrs) remembered per (root, path) with the stat they were computed
 * for, in the agent's state database. Reused only when device, inode, size, mtime *and* ctime
 * all match: any write, chmod, setxattr, rename-over or restore-with-old-mtime moves ctime, so
 * nothing slips through.
 */
export interface StatCache {
  /** True when nothing was cached for this root when it was opened: every file will be read. */
  readonly empty: boolean;
  /** Fastest in key order (`cacheKey`: the walk's order); any order is answered. */
  lookup(path: Buffer, st: FileStat): CachedFile | undefined;
  /** Queued; written in one transaction per batch. `xattrs` null: not known for this stat. */
  remember(path: Buffer, st: FileStat, sha256: string, xattrs: SecurityXattrs | null): void;
  /** Writes what is queued; called at the end of a walk. */
  flush(): void;
  /** Drops the rows of this root when far more are stored than the walk saw (deleted paths pile up otherwise). */
  prune(filesSeen: number): void;
  /** Range reads made so far: a walk, which looks up in key order, makes a few per thousand files. */
  pagesRead(): number;
  /** Paths of this root the cache holds: about what the last walk saw. */
  size(): number;
  close(): void;
}

const BATCH = 2000;

/** Opens (creating if needed) `<stateDir>/agent.db` and returns the cache of one root. */
export function openStatCache(stateDir: string, root: string): StatCache {
  return createStatCache(openCacheDb(stateDir, migrate), root, true);
}

/**
 * Creates the cache's tables. `user_version` is left to the state database's other users (the
 * outbox shares agent.db): the cache only saves work, so a new layout takes a new table name
 * and the old one is copied over (or dropped) rather than altered in place.
 */
function migrate(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS stat_roots (id INTEGER PRIMARY KEY, dir TEXT NOT NULL UNIQUE);
    -- The first layout, without the xattrs: its rows are re-hashed once.
    DROP TABLE IF EXISTS stat_cache;
    -- Keyed by a small root id, not the root's path: a million rows would repeat it a million times.
    -- key: the path's bytes with every '/' as a 0 byte (which no name holds), so the key order
    -- is the walk's order (comparePathBytes) and a walk reads the cache as one ordered range.
    -- xattrs: the security xattrs as JSON, '' for none, NULL when not known.
    CREATE TABLE IF NOT EXISTS file_digests (
      root INTEGER NOT NULL,
      key BLOB NOT NULL,
      dev INTEGER NOT NULL,
      ino INTEGER NOT NULL,
      size INTEGER NOT NULL,
      mtime_ms REAL NOT NULL,
      ctime_ms REAL NOT NULL,
      sha256 BLOB NOT NULL,
      xattrs TEXT,
      PRIMARY KEY (root, key)
    ) WITHOUT ROWID;
  `);
  // The layout before, keyed by the plain path: its rows are carried over, not re-hashed.
  if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'file_cache'").get() === undefined) return;
  const put = db.prepare('INSERT OR REPLACE INTO file_digests (root, key, dev, ino, size, mtime_ms, ctime_ms, sha256, xattrs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
  db.transaction(() => {
    const rows = db.prepare('SELECT root, path, dev, ino, size, mtime_ms, ctime_ms, sha256, xattrs FROM file_cache').raw().all() as unknown[][];
    for (const [root, p, ...rest] of rows) put.run(root, cacheKey(p as Buffer), ...rest);
    db.exec('DROP TABLE file_cache');
  })();
}

/** The cache's key of a path inside the root: its bytes, every '/' a 0 byte. */
export function cacheKey(p: Buffer): Buffer {
  return keyInto(p, Buffer.allocUnsafe(p.length));
}

/** `cacheKey` written into `into` (at least as long as `p`); returns the view of it that holds the key. */
function keyInto(p: Buffer, into: Buffer): Buffer {
  for (let i = 0; i < p.length; i++) {
    const b = p[i]!;
    into[i] = b === 0x2f ? 0 : b;
  }
  return into.subarray(0, p.length);
}

/**
 * Rows read at once while look-ups come in walk order. A read after a jump (the first look-up,
 * or one out of order) takes a few rows, and each read that follows in order twice as many.
 */
const PAGE_MIN = 16;
const PAGE_MAX = 1024;

/** key and sha256 in upper-case hex (SQLite's `hex`): ordered as the bytes are. */
type Row = [key: string, dev: number, ino: number, size: number, mtimeMs: number, ctimeMs: number, sha256: string, xattrs: string | null];

/** Over an already open database (the daemon shares one connection with its outbox). */
export function createStatCache(db: Db, rootDir: string, ownsDb = false): StatCache {
  migrate(db);
  db.prepare('INSERT OR IGNORE INTO stat_roots (dir) VALUES (?)').run(rootDir);
  const root = db.prepare('SELECT id FROM stat_roots WHERE dir = ?').pluck().get(rootDir) as number;
  // A page of rows from a key on: a walk asks in key order, so one range read serves a
  // thousand look-ups instead of a B-tree descent per file.
  // Key and digest come as hex text: a string per row is far cheaper to make than a Buffer.
  // Upper case as `hex` gives it: lower() on two columns of every row cost ~20% of the read.
  const page = db.prepare(`SELECT hex(key), dev, ino, size, mtime_ms, ctime_ms, hex(sha256), xattrs FROM file_digests WHERE root = ? AND key >= ? ORDER BY key LIMIT ?`).raw() as Statement<[number, Buffer, number], Row>;
  const count = db.prepare('SELECT count(*) FROM file_digests WHERE root = ?').pluck();
  const dropRoot = db.prepare('DELETE FROM file_digests WHERE root = ?');
  type Queued = [Buffer, FileStat, string, SecurityXattrs | null];
  let queue: Queued[] = [];
  const empty = db.prepare('SELECT 1 FROM file_digests WHERE root = ? LIMIT 1').pluck().get(root) === undefined;
  const insert = rowInserter(db, 'INSERT OR REPLACE INTO file_digests (root, key, dev, ino, size, mtime_ms, ctime_ms, sha256, xattrs)', 9);
  const writeBatch = db.transaction((rows: Queued[]) => {
    insert(rows.map(([p, st, sha, x]) => [root, cacheKey(p), st.dev, st.ino, st.size, st.mtimeMs, st.ctimeMs, Buffer.from(sha, 'hex'), xattrsText(x)]));
  });
  // The page read last, and where in it the look-ups are: every cached key from rows[0] to the
  // last row's is in `rows`; `more` says whether rows may follow the last one.
  let rows: Row[] = [];
  let at = 0;
  let more = true;
  let size = PAGE_MIN;
  let pages = 0;
  let last: string | undefined;
  let written = 0;
  const flush = (): void => {
    if (queue.length === 0) return;
    const q = queue;
    queue = [];
    written += q.length;
    writeBatch(q);
  };
  const read = (from: Buffer): void => {
    rows = page.all(root, from, size);
    pages++;
    at = 0;
    more = rows.length === size;
    size = Math.min(2 * size, PAGE_MAX);
  };
  // The key of a look-up is built in one reused buffer: only a page read needs its own copy.
  let scratch = Buffer.allocUnsafe(4096);
  const find = (p: Buffer): Row | undefined => {
    if (scratch.length < p.length) scratch = Buffer.allocUnsafe(2 * p.length);
    const bytes = keyInto(p, scratch);
    const key = bytes.toString('hex').toUpperCase();
    if (last === undefined || key <= last) {
      size = PAGE_MIN;
      read(Buffer.from(bytes));
    }
    last = key;
    for (;;) {
      while (at < rows.length) {
        const k = rows[at]![0];
        if (k === key) return rows[at];
        if (k > key) return undefined;
        at++;
      }
      if (!more) return undefined;
      // Past the page: the next one starts at this key (rows in between are of gone paths).
      read(Buffer.from(bytes));
    }
  };
  return {
    empty,
    lookup(p, st) {
      // A first run (manifest, or a new state folder) asks nothing: there is nothing to find.
      if (empty) return undefined;
      const row = find(p);
      if (!row) return undefined;
      const [, dev, ino, size, mtimeMs, ctimeMs, sha, x] = row;
      if (dev !== st.dev || ino !== st.ino || size !== st.size || mtimeMs !== st.mtimeMs || ctimeMs !== st.ctimeMs) return undefined;
      return { sha256: sha.toLowerCase(), xattrs: x === null ? null : x === '' ? NO_XATTRS : (JSON.parse(x) as SecurityXattrs) };
    },
    remember(p, st, sha256, xattrs) {
      queue.push([p, st, sha256, xattrs]);
      if (queue.length >= BATCH) flush();
    },
    flush,
    pagesRead: () => pages,
    size: () => count.get(root) as number,
    prune(filesSeen) {
      flush();
      // Rows are only ever added by a walk that remembered some: one that remembered none
      // cannot have grown the table (a count is ~20 ms at 100k rows, ~0.2 s at 1M).
      if (written === 0) return;
      const stored = count.get(root) as number;
      // Cheaper than tracking every path seen: a tree that lost half its files re-hashes once.
      if (stored > 2 * filesSeen + 1000) dropRoot.run(root);
    },
    close() {
      flush();
      if (ownsDb) db.close();
    },
  };
}

const NO_XATTRS: SecurityXattrs = Object.freeze({});

function xattrsText(x: SecurityXattrs | null): string | null {
  if (x === null) return null;
  return Object.keys(x).length === 0 ? '' : JSON.stringify(x);
}
