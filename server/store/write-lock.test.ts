// The API's connection writes beside the ingest thread's. A triage act that reads, then writes,
// must wait for the other writer, not fail with SQLITE_BUSY (a 500) because its snapshot went stale.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createSqliteStore } from './sqlite-store.js';
import type { Store } from './types.js';

let dir: string;
let store: Store;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'quicksand-write-lock-'));
  store = createSqliteStore(path.join(dir, 'server.db'));
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Another connection (as the ingest thread's) writes to the host and commits a moment later. */
async function otherWriterHolding(file: string, hostId: string): Promise<Worker> {
  const worker = new Worker(
    `const Database = require('better-sqlite3');
     const { workerData, parentPort } = require('node:worker_threads');
     const db = new Database(workerData.file);
     db.exec('BEGIN IMMEDIATE');
     db.prepare('UPDATE hosts SET outbox_depth = outbox_depth + 1 WHERE id = ?').run(workerData.hostId);
     parentPort.postMessage('locked');
     setTimeout(() => { db.exec('COMMIT'); db.close(); }, 200);`,
    { eval: true, workerData: { file, hostId } },
  );
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  return worker;
}

it('sets a host\'s labels while another connection is writing, once that one commits', async () => {
  const now = new Date('2026-11-29T12:00:00Z');
  const { agentId } = store.enrollAgent(store.createEnrollSecret(now), 'busy', now)!;
  const worker = await otherWriterHolding(path.join(dir, 'server.db'), agentId);
  try {
    const res = store.triage.setLabels({ hostId: agentId, labels: { env: 'prod' }, actor: { id: 'analyst', role: 'analyst' }, now });
    expect(res.labels).toEqual({ env: 'prod' });
    expect(store.getHost(agentId, now)!.outboxDepth).toBe(1);
  } finally {
    await worker.terminate();
  }
});
