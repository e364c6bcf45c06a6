// The delivery loop asks for due deliveries every second, on the connection beside the ingest
// thread and under the write lock: that question must walk the partial index of the few pending
// and claimed rows, never every delivery ever planned (those grow with every alert).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { migrate, openDatabase } from './db.js';
import { DUE_DELIVERIES_SQL } from './alert-queue.js';

let dir: string | undefined;
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

it('finds the due deliveries through the partial index, not by scanning the table', () => {
  dir = mkdtempSync(path.join(tmpdir(), 'qs-due-'));
  const file = path.join(dir, 'q.db');
  const db = openDatabase(file);
  migrate(db, file);
  const plan = db.prepare<[number, number, number], { detail: string }>(`EXPLAIN QUERY PLAN ${DUE_DELIVERIES_SQL}`).all(1, 1, 1).map((r) => r.detail);
  db.close();
  expect(plan.join('\n')).toContain('USING INDEX alert_deliveries_due');
});
