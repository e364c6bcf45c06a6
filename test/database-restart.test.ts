// The PostgreSQL server restarted under a node in mid-stream: meanwhile the node answers /healthz
// with 503 and stores nothing, the agent keeps its reports in its outbox, and once the database
// is back every report is stored exactly once, in order. A cluster of this test's own (restarting
// the shared one would cut off the other suites).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { createOutbox } from '../agent/deliver/outbox.js';
import { createTransport } from '../agent/deliver/transport.js';
import { openStateDb } from '../agent/state-db.js';
import { createPostgresStore } from '../server/store/postgres/store.js';
import { startCluster } from './helpers/postgres.js';
import type { Cluster } from './helpers/postgres.js';
import { freePort, killAll, startServerChild, waitFor } from './helpers/processes.js';
import { expectExactlyOnceInOrder } from './helpers/report-history.js';
import { makeTinyRoot } from './helpers/tiny-root.js';
import type { TinyRoot } from './helpers/tiny-root.js';

let cluster: Cluster;
let tiny: TinyRoot;
let work: string;
beforeAll(async () => {
  cluster = await startCluster();
  tiny = makeTinyRoot();
  work = mkdtempSync(path.join(tmpdir(), 'quicksand-dbrestart-'));
  process.env['QUICKSAND_SINK_KEY_FILE'] = path.join(work, 'postgres.sinks.key');
});
afterEach(() => killAll());
afterAll(async () => {
  await cluster?.stop();
  tiny?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the database restarted under a node', () => {
  it('answers 503 while PostgreSQL is down, the agent keeps its outbox, and every report is stored once, in order, when it is back', async () => {
    const admin = new pg.Client({ connectionString: cluster.url('postgres') });
    await admin.connect();
    await admin.query('CREATE DATABASE quicksand');
    await admin.end();
    const url = cluster.url('quicksand');
    const port = await freePort();
    const node = await startServerChild(url, port, ['--node-id', 'n1']);
    const store = await createPostgresStore(url);
    const apiToken = await store.createApiToken('auditor', new Date());
    const config = await enrollAgent(node.url, await store.createEnrollSecret(new Date()), 'restart-host');
    await store.close();

    mkdirSync(path.join(work, 'agent'), { recursive: true });
    const stateDb = openStateDb(path.join(work, 'agent'));
    const outbox = createOutbox(stateDb);
    const report = await tiny.scan('restart-host');
    const total = 600;
    for (let i = 0; i < total; i++) outbox.enqueue(report, 'full', new Date());
    const transport = createTransport({ config, outbox, host: { hostname: 'restart-host' }, image: report.image, backoff: { firstMaxMs: 100, baseMs: 200, capMs: 1000 } });
    transport.start();
    try {
      await waitFor('some reports stored', () => outbox.depth() < total - 50, 30_000, 5);
      const statuses: number[] = [];
      let down = true;
      const watching = (async () => {
        while (down) {
          statuses.push(await fetch(`${node.url}/healthz`).then((r) => r.status, () => 0));
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const restarted = cluster.restart(3000);
      // While it is down: the node says it is not ready, and the agent still holds what it could not deliver.
      await waitFor('the node to answer 503', () => statuses.includes(503), 10_000, 50);
      const heldWhileDown = outbox.depth();
      expect(heldWhileDown).toBeGreaterThan(0);
      await restarted;
      await waitFor('the node to be ready again', () => statuses.at(-1) === 200, 30_000, 50);
      down = false;
      await watching;
      await waitFor('the outbox to drain', () => outbox.depth() === 0, 60_000, 50);
      expect(node.proc.exitCode).toBeNull();
    } finally {
      await transport.stop();
      stateDb.close();
    }
    await expectExactlyOnceInOrder(node.url, apiToken, config.agentId, total);
  });
});
