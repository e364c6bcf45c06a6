import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { QuicksandError } from '../../shared/errors.js';
import { MIGRATIONS } from './migrations.js';

/**
 * Opens (creating if needed) the server database and brings its schema up to date. WAL lets the
 * API read while ingest writes; synchronous=FULL because an ack promises the report survives a
 * power cut, not only a crash of this process.
 */
export function openDatabase(file: string): Db {
  let db: Db;
  try {
    if (file !== ':memory:') mkdirSync(path.dirname(path.resolve(file)), { recursive: true, mode: 0o700 });
    db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    // Another process (the `token create` CLI) may hold the write lock for a moment.
    db.pragma('busy_timeout = 5000');
  } catch (err) {
    throw new QuicksandError('DB_UNUSABLE', `cannot open database ${file}: ${(err as Error).message}`, { cause: err });
  }
  migrate(db, file);
  return db;
}

/** Applies the migrations past the database's user_version, each in its own transaction. */
export function migrate(db: Db, file: string): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new QuicksandError('DB_UNUSABLE', `database ${file} has schema version ${current}, this server knows up to ${MIGRATIONS.length}: upgrade quicksand-server`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
