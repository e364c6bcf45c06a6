// better-sqlite3's constructor, required rather than imported: importing a CommonJS package from
// an ES module makes Node parse its sources first for the names it exports (cjs-module-lexer),
// ~8 ms of every agent command's start-up for a package whose one export is this constructor.
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

export const Database = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
