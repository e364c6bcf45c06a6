// better-sqlite3's constructor, required rather than imported: importing a CommonJS package from
// an ES module makes Node parse its sources first for the names it exports (cjs-module-lexer),
// ~8 ms of every agent command's start-up for a package whose one export is this constructor.
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

export const Database = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;

/** Rows per statement of `rowInserter`: 9 columns x 32 stays far below SQLite's 32,766 parameters. */
const ROWS_PER_STATEMENT = 32;

/**
 * Inserts rows of `width` values with one statement per ROWS_PER_STATEMENT rows (the rest one by
 * one): binding and stepping a statement per row was half the CPU of writing 100k rows.
 * `insert` is the statement up to VALUES, e.g. `INSERT OR REPLACE INTO t (a, b)`. Call it
 * inside a transaction.
 */
export function rowInserter(db: BetterSqlite3.Database, insert: string, width: number): (rows: readonly unknown[][]) => void {
  const tuple = `(${new Array<string>(width).fill('?').join(', ')})`;
  const one = db.prepare(`${insert} VALUES ${tuple}`);
  const many = db.prepare(`${insert} VALUES ${new Array<string>(ROWS_PER_STATEMENT).fill(tuple).join(', ')}`);
  const values: unknown[] = [];
  return (rows) => {
    let i = 0;
    for (; i + ROWS_PER_STATEMENT <= rows.length; i += ROWS_PER_STATEMENT) {
      values.length = 0;
      for (let j = i; j < i + ROWS_PER_STATEMENT; j++) for (const v of rows[j]!) values.push(v);
      many.run(values);
    }
    for (; i < rows.length; i++) one.run(rows[i]!);
  };
}
