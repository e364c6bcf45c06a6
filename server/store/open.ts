// Which backend a --db names: a postgres:// URL is the PostgreSQL store, anything else the SQLite file.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { AlertPolicy } from '../alerts/policy.js';
import { createPostgresStore, isPostgresUrl } from './postgres/store.js';
import type { PostgresStore } from './postgres/store.js';
import { describeUrl, migrate, openPostgres } from './postgres/db.js';
import { PG_MIGRATIONS } from './postgres/migrations.js';
import { openDatabase } from './db.js';
import { MIGRATIONS } from './migrations.js';
import { sinkKeyFromFile } from './sink-secrets.js';

export { isPostgresUrl };

/** The --db as messages show it: a URL without its password. */
export function describeDatabase(db: string): string {
  return isPostgresUrl(db) ? `postgres ${describeUrl(db)}` : db;
}

/**
 * The sink key of a PostgreSQL deployment: every node must seal and open sinks with the same one,
 * so it is a file each node is given (QUICKSAND_SINK_KEY_FILE), by default in the server's data
 * folder (`dataDir`), created on first use.
 */
export function pgSinkKeyFile(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.QUICKSAND_SINK_KEY_FILE !== undefined && env.QUICKSAND_SINK_KEY_FILE !== '' ? env.QUICKSAND_SINK_KEY_FILE : path.join(dataDir, 'postgres.sinks.key');
}

/** The sink key of a PostgreSQL deployment (see pgSinkKeyFile), its file created on first use. */
export function pgSinkKey(dataDir: string): Buffer {
  const keyFile = pgSinkKeyFile(dataDir);
  mkdirSync(path.dirname(keyFile), { recursive: true, mode: 0o700 });
  return sinkKeyFromFile(keyFile);
}

/** The PostgreSQL store with the deployment's sink key (pgSinkKey). */
export async function openPostgresStore(url: string, sinkKey: Buffer, opts: { staleAfterMs?: number; alertPolicy?: AlertPolicy } = {}): Promise<PostgresStore> {
  return createPostgresStore(url, { ...opts, sinkKey });
}

/** Applies the migrations a database lacks (`quicksand-server migrate`); returns those applied and the latest version. */
export async function migrateDatabase(db: string): Promise<{ applied: number[]; latest: number }> {
  if (isPostgresUrl(db)) {
    const pg = await openPostgres(db, { max: 1, migrate: false });
    try {
      return { applied: await migrate(pg), latest: PG_MIGRATIONS.length };
    } finally {
      await pg.close();
    }
  }
  // The version before: a file that does not exist yet has none.
  let before = 0;
  if (existsSync(db)) {
    const peek = new Database(db, { readonly: true, fileMustExist: true });
    try {
      before = peek.pragma('user_version', { simple: true }) as number;
    } finally {
      peek.close();
    }
  }
  openDatabase(db).close();
  const latest = MIGRATIONS.length;
  return { applied: Array.from({ length: Math.max(0, latest - before) }, (_, i) => before + i + 1), latest };
}
