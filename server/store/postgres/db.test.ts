// tx() runs a transaction again when PostgreSQL rolls it back for a deadlock: a real one, between
// the transaction and a second connection locking the same two rows in the other order. Array
// parameters reach PostgreSQL as they were, in binary or (what that cannot carry) as literals.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { openPostgres } from './db.js';
import type { PgDatabase } from './db.js';

const name = `qs_deadlock_${process.pid}`;
const url = (db: string): string => inject('postgresUrl').replace('{db}', db);

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url('postgres') });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

let db: PgDatabase;
beforeAll(async () => {
  await admin(`CREATE DATABASE ${name}`);
  db = await openPostgres(url(name), { migrate: false });
  await db.script('CREATE TABLE pair (id int PRIMARY KEY, v int NOT NULL); INSERT INTO pair VALUES (1, 0), (2, 0);');
});
afterAll(async () => {
  await db?.close();
  await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
});

describe('a PostgreSQL transaction', () => {
  it('runs again from the start when it is chosen as a deadlock victim, and commits', async () => {
    const other = new pg.Client({ connectionString: url(name) });
    await other.connect();
    try {
      // The other side waits long before it checks for deadlocks: the tx() side is the one rolled back.
      await other.query("SET deadlock_timeout = '20s'");
      let attempts = 0;
      let otherHasRow2!: () => void;
      const row2Locked = new Promise<void>((r) => (otherHasRow2 = r));
      let otherDone: Promise<unknown> | undefined;
      const result = await db.tx(async (q) => {
        attempts++;
        await q.script("SET LOCAL deadlock_timeout = '50ms'");
        await q.run('UPDATE pair SET v = v + 1 WHERE id = 1');
        if (attempts === 1) {
          // The other connection takes row 2, then waits for row 1 (held here).
          await other.query('BEGIN');
          await other.query('UPDATE pair SET v = v + 10 WHERE id = 2');
          otherDone = other.query('UPDATE pair SET v = v + 10 WHERE id = 1').then(() => other.query('COMMIT'));
          otherHasRow2();
        }
        await row2Locked;
        // Row 2 is the other's: waiting for it closes the cycle on the first attempt.
        await q.run('UPDATE pair SET v = v + 1 WHERE id = 2');
        return attempts;
      });
      await otherDone;
      expect(result).toBe(2);
      const rows = await db.rows<{ id: number; v: number }>('SELECT id, v FROM pair ORDER BY id');
      // Each side's updates exactly once: the rolled-back attempt left nothing.
      expect(rows).toEqual([
        { id: 1, v: 11 },
        { id: 2, v: 11 },
      ]);
    } finally {
      await other.end();
    }
  });
});

describe('array parameters', () => {
  it('reach PostgreSQL element for element: quotes, backslashes, braces, commas, non-ASCII, NULL, empty', async () => {
    const texts = ['{"a":"b\\"c"}', 'a,b', '{}', 'NULL', '', null, 'ünïcødé ✓ 𝄞', 'x'.repeat(5000)];
    const row = await db.row<{ t: unknown; b: unknown; i: unknown; e: number; n: unknown }>(
      `SELECT (SELECT json_agg(x ORDER BY o) FROM unnest($1::text[]) WITH ORDINALITY AS u(x, o)) AS t,
         (SELECT json_agg(x ORDER BY o) FROM unnest($2::bigint[]) WITH ORDINALITY AS u(x, o)) AS b,
         (SELECT json_agg(x ORDER BY o) FROM unnest($3::int[]) WITH ORDINALITY AS u(x, o)) AS i,
         cardinality($4::text[]) AS e, to_json($5::bigint[]) AS n`,
      [texts, [1, null, 2 ** 53 - 1, -(2 ** 40)], [0, -2147483648, 2147483647, null], [], [7]],
    );
    expect(row).toEqual({ t: texts, b: [1, null, 2 ** 53 - 1, -(2 ** 40)], i: [0, -2147483648, 2147483647, null], e: 0, n: [7] });
  });

  it('that binary cannot carry exactly go as literals: PostgreSQL still reads or refuses them as before', async () => {
    expect((await db.row<{ t: unknown }>('SELECT to_json($1::text[]) AS t', [[1.5, true]]))?.t).toEqual(['1.5', 'true']);
    expect((await db.row<{ b: unknown }>('SELECT to_json($1::bigint[]) AS b', [['12', new Date(0).getTime()]]))?.b).toEqual([12, 0]);
    await expect(db.row('SELECT $1::int[] AS i', [[2 ** 31]])).rejects.toThrow(/out of range/);
    await expect(db.row('SELECT $1::bigint[] AS b', [[1.5]])).rejects.toThrow(/invalid input syntax/);
  });
});
