import { Database } from './sqlite.js';
import type { Database as Db } from 'better-sqlite3';
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { QuicksandError } from '../shared/errors.js';

export const STATE_DB_NAME = 'state.db';

/**
 * Opens the agent's state database in its state folder. synchronous=FULL: a report in the outbox
 * must survive a power cut, since the agent deletes nothing until the server has it.
 */
export function openStateDb(stateDir: string): Db {
  const file = path.join(stateDir, STATE_DB_NAME);
  makeStateDir(stateDir);
  try {
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    return db;
  } catch (err) {
    throw new QuicksandError('STATE_DIR_UNUSABLE', `cannot open the agent's state database ${file}: ${(err as Error).message}; run as root or pass --state DIR`, { cause: err });
  }
}

export const CACHE_DB_NAME = 'agent.db';

/**
 * Opens the agent's cache database (digests by stat, paths known clean) in its state folder,
 * running `prepare` (a migration) inside the same error handling. synchronous=NORMAL: it is
 * rebuildable, and losing the last transaction on power loss only costs a re-hash or a full
 * comparison. A small page cache: look-ups read its tables in key order, a page at a time, so
 * the agent's memory stays flat however large they grow.
 */
export function openCacheDb(stateDir: string, prepare: (db: Db) => void = () => {}): Db {
  makeStateDir(stateDir);
  try {
    const db = new Database(path.join(stateDir, CACHE_DB_NAME));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    // The daemon's scan child and the daemon itself (a re-baseline's observation) may meet here.
    db.pragma('busy_timeout = 5000');
    db.pragma('cache_size = -2048');
    prepare(db);
    return db;
  } catch (err) {
    throw new QuicksandError('STATE_DIR_UNUSABLE', `cannot open the state database in ${stateDir}: ${(err as Error).message}`);
  }
}

// The state folder itself: created when missing, and a clear word when it cannot be — above all
// when --state names a file.

/** Creates `dir` (0700) if needed; throws STATE_DIR_UNUSABLE saying what is in the way. */
export function makeStateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    const file = fileInTheWay(dir);
    if (file === dir) throw new QuicksandError('STATE_DIR_UNUSABLE', `the state folder ${dir} is a file, not a folder: pass --state DIR with a folder`);
    if (file !== null) throw new QuicksandError('STATE_DIR_UNUSABLE', `cannot create the state folder ${dir}: ${file} is a file, not a folder; pass --state DIR`);
    const denied = (err as NodeJS.ErrnoException).code === 'EACCES' || (err as NodeJS.ErrnoException).code === 'EPERM';
    throw new QuicksandError('STATE_DIR_UNUSABLE', `cannot create the state folder ${dir}: ${(err as Error).message}${denied ? '; run as root or pass --state DIR' : ''}`);
  }
}

/** `dir` or the nearest of its parents that exists, when that is not a folder. */
function fileInTheWay(dir: string): string | null {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      return statSync(d).isDirectory() ? null : d;
    } catch {
      if (path.dirname(d) === d) return null;
    }
  }
}
