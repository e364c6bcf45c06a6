// What every server command shares: the I/O it is given, exit codes, the database option, and
// who acts when a command changes something (the audit log's `cli:USER`).
import { existsSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import path from 'node:path';
import { QuicksandError } from '../../shared/errors.js';
import { createSqliteStore } from '../store/sqlite-store.js';
import { isPostgresUrl, openPostgresStore, pgSinkKey } from '../store/open.js';
import type { Actor, Store } from '../store/types.js';

export interface ServerCliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM). */
  stopSignal: Promise<void>;
  /** Standard input, up to `max` bytes (`user add --password-stdin`); absent: none to read. */
  readStdin?: (max: number) => Promise<string>;
}

export const EXIT_OK = 0;
export const EXIT_ERROR = 2;

/**
 * A fixed data folder, never the current one: /var/lib/quicksand-server as root, else the
 * user's data folder ($XDG_DATA_HOME or ~/.local/share). Pure given its inputs.
 */
export function defaultDatabase(env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? -1, home: string = homedir()): string {
  if (uid === 0) return '/var/lib/quicksand-server/server.db';
  const data = env.XDG_DATA_HOME !== undefined && path.isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : path.join(home, '.local/share');
  return path.join(data, 'quicksand-server', 'server.db');
}

export const DB_HELP = `  --db FILE|URL         the server's SQLite database file, or a postgres://USER@HOST:PORT/DB
                        URL for a PostgreSQL one (default: $QUICKSAND_DB, else ${defaultDatabase()})\n`;

export const COMMON = { help: { type: 'boolean', short: 'h' }, db: { type: 'string' } } as const;

/** --db, else QUICKSAND_DB, else the default SQLite file. */
export function database(values: { db?: unknown }, env: NodeJS.ProcessEnv = process.env): string {
  return (values.db as string | undefined) ?? (env.QUICKSAND_DB !== undefined && env.QUICKSAND_DB !== '' ? env.QUICKSAND_DB : defaultDatabase());
}

/** Where the server keeps its files beside the database (a PostgreSQL deployment's sink key). */
export function dataFolder(db: string): string {
  return path.dirname(isPostgresUrl(db) ? defaultDatabase() : path.resolve(db));
}

/**
 * The store of a database that exists: a command that changes credentials must not create an
 * empty database whose tokens no running server knows (`start` creates it).
 */
export async function withStore(db: string, fn: (store: Store) => Promise<number>): Promise<number> {
  if (isPostgresUrl(db)) {
    const store = await openPostgresStore(db, pgSinkKey(dataFolder(db)));
    try {
      return await fn(store);
    } finally {
      await store.close();
    }
  }
  if (!existsSync(db)) {
    throw new QuicksandError('DB_UNUSABLE', `${db} does not exist: pass the --db the server runs with, or start it once (quicksand-server start --db ${db}) to create it`);
  }
  const store = createSqliteStore(db);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Whoever runs the command line with the database file: named by their OS user. */
export function cliActor(): Actor {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = `uid ${process.getuid?.() ?? 'unknown'}`;
  }
  return { id: `cli:${user}`, role: 'cli', name: user };
}
