// What every server command shares: the I/O it is given, exit codes, the database option.
import { createSqliteStore } from '../store/sqlite-store.js';

export interface ServerCliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM). */
  stopSignal: Promise<void>;
}

export const EXIT_OK = 0;
export const EXIT_ERROR = 2;
export const DEFAULT_DB = '.quicksand/server.db';

export const DB_HELP = `  --db FILE             the server's SQLite database (default: ${DEFAULT_DB})\n`;

export const COMMON = { help: { type: 'boolean', short: 'h' }, db: { type: 'string' } } as const;

export function database(values: { db?: unknown }): string {
  return (values.db as string | undefined) ?? DEFAULT_DB;
}

export function withStore(db: string, fn: (store: ReturnType<typeof createSqliteStore>) => number): number {
  const store = createSqliteStore(db);
  try {
    return fn(store);
  } finally {
    store.close();
  }
}
