import path from 'node:path';
import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { makeStateDir } from '../state-db.js';
import { QuicksandError } from '../../shared/errors.js';
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
  lookup(path: Buffer, st: FileStat): CachedFile | undefined;
  /** Queued; written in one transaction per batch. `xattrs` null: not known for this stat. */
  remember(path: Buffer, st: FileStat, sha256: string, xattrs: SecurityXattrs | null): void;
  /** Writes what is queued; called at the end of a walk. */
  flush(): void;
  /** Drops the rows of this root when far more are stored than the walk saw (deleted paths pile up otherwise). */
  prune(filesSeen: number): void;
  /** Paths of this root the cache holds: about what the last walk saw. */
  size(): number;
  close(): void;
}

const BATCH = 2000;
const READ_SPAN = 20000;

/** Opens (creating if needed) `<stateDir>/agent.db` and returns the cache of one root. */
export function openStatCache(stateDir: string, root: string): StatCache {
  makeStateDir(stateDir);
  let db: Db;
  try {
    db = new Database(path.join(stateDir, 'agent.db'));
    db.pragma('journal_mode = WAL');
    // The cache is rebuildable: losing the last transaction on power loss only costs a re-hash.
    db.pragma('synchronous = NORMAL');
    // The daemon's scan child and the daemon itself (a re-baseline's observation) may meet here.
    db.pragma('busy_timeout = 5000');
    // Look-ups follow the walk, which is nearly key order: a small page cache serves them, and
    // the agent's memory stays flat however large the table grows.
    db.pragma('cache_size = -2048');
    migrate(db);
  } catch (err) {
    throw new QuicksandError('STATE_DIR_UNUSABLE', `cannot open the state database in ${stateDir}: ${(err as Error).message}`);
  }
  return createStatCache(db, root, true);
}

/**
 * Creates the cache's tables. `user_version` is left to the state database's other users (the
 * outbox shares agent.db): the cache only saves work, so a future layout takes new table names
 * and drops these rather than converting them.
 */
function migrate(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS stat_roots (id INTEGER PRIMARY KEY, dir TEXT NOT NULL UNIQUE);
    -- The first layout, without the xattrs: its rows are re-hashed once.
    DROP TABLE IF EXISTS stat_cache;
    -- Keyed by a small root id, not the root's path: a million rows would repeat it a million times.
    -- xattrs: the security xattrs as JSON, '' for none, NULL when not known.
    CREATE TABLE IF NOT EXISTS file_cache (
      root INTEGER NOT NULL,
      path BLOB NOT NULL,
      dev INTEGER NOT NULL,
      ino INTEGER NOT NULL,
      size INTEGER NOT NULL,
      mtime_ms REAL NOT NULL,
      ctime_ms REAL NOT NULL,
      sha256 BLOB NOT NULL,
      xattrs TEXT,
      PRIMARY KEY (root, path)
    ) WITHOUT ROWID;
  `);
}

/** Over an already open database (the daemon shares one connection with its outbox). */
export function createStatCache(db: Db, rootDir: string, ownsDb = false): StatCache {
  migrate(db);
  db.prepare('INSERT OR IGNORE INTO stat_roots (dir) VALUES (?)').run(rootDir);
  const root = db.prepare('SELECT id FROM stat_roots WHERE dir = ?').pluck().get(rootDir) as number;
  const get = db.prepare('SELECT dev, ino, size, mtime_ms, ctime_ms, sha256, xattrs FROM file_cache WHERE root = ? AND path = ?').raw() as Statement<[number, Buffer], [number, number, number, number, number, Buffer, string | null]>;
  const put = db.prepare('INSERT OR REPLACE INTO file_cache (root, path, dev, ino, size, mtime_ms, ctime_ms, sha256, xattrs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
  const count = db.prepare('SELECT count(*) FROM file_cache WHERE root = ?').pluck();
  const dropRoot = db.prepare('DELETE FROM file_cache WHERE root = ?');
  type Row = [Buffer, FileStat, string, SecurityXattrs | null];
  let queue: Row[] = [];
  const empty = db.prepare('SELECT 1 FROM file_cache WHERE root = ? LIMIT 1').pluck().get(root) === undefined;
  const writeBatch = db.transaction((rows: Row[]) => {
    for (const [p, st, sha, x] of rows) put.run(root, p, st.dev, st.ino, st.size, st.mtimeMs, st.ctimeMs, Buffer.from(sha, 'hex'), xattrsText(x));
  });
  // Look-ups run inside one read transaction, not one implicit transaction each: several times
  // quicker. It ends before every write batch and every READ_SPAN look-ups, so a long walk
  // never holds a snapshot that keeps the WAL from being checkpointed.
  const begin = db.prepare('BEGIN');
  const commit = db.prepare('COMMIT');
  let reads = -1; // -1: no read transaction of ours is open
  const endReads = (): void => {
    if (reads >= 0 && db.inTransaction) commit.run();
    reads = -1;
  };
  const flush = (): void => {
    endReads();
    if (queue.length === 0) return;
    const rows = queue;
    queue = [];
    writeBatch(rows);
  };
  return {
    empty,
    lookup(p, st) {
      // A first run (manifest, or a new state folder) asks nothing: there is nothing to find.
      if (empty) return undefined;
      if (reads >= READ_SPAN) endReads();
      if (reads < 0 && !db.inTransaction) {
        begin.run();
        reads = 0;
      }
      if (reads >= 0) reads++;
      const row = get.get(root, p);
      if (!row) return undefined;
      const [dev, ino, size, mtimeMs, ctimeMs, sha, x] = row;
      if (dev !== st.dev || ino !== st.ino || size !== st.size || mtimeMs !== st.mtimeMs || ctimeMs !== st.ctimeMs) return undefined;
      return { sha256: sha.toString('hex'), xattrs: x === null ? null : x === '' ? NO_XATTRS : (JSON.parse(x) as SecurityXattrs) };
    },
    remember(p, st, sha256, xattrs) {
      queue.push([p, st, sha256, xattrs]);
      if (queue.length >= BATCH) flush();
    },
    flush,
    size: () => count.get(root) as number,
    prune(filesSeen) {
      flush();
      endReads();
      const stored = count.get(root) as number;
      // Cheaper than tracking every path seen: a tree that lost half its files re-hashes once.
      if (stored > 2 * filesSeen + 1000) dropRoot.run(root);
    },
    close() {
      flush();
      endReads();
      if (ownsDb) db.close();
    },
  };
}

const NO_XATTRS: SecurityXattrs = Object.freeze({});

function xattrsText(x: SecurityXattrs | null): string | null {
  if (x === null) return null;
  return Object.keys(x).length === 0 ? '' : JSON.stringify(x);
}
