// tx() runs a transaction again when PostgreSQL rolls it back for a deadlock: a real one, between
// the transaction and a second connection locking the same two rows in the other order.
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
