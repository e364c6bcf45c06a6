import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import path from 'node:path';
import { QuicksandError } from '../shared/errors.js';
import { makeStateDir } from './fingerprint/state-dir.js';

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
