// Three server nodes on one database behind a real nginx on loopback, configured as docs/operations.md
// says: agents spread over the nodes through one URL; a node killed with -9 in mid-stream loses
// nothing, its agents reconnect through nginx to the others and every report is stored exactly
// once, in order, chain intact.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { createOutbox } from '../agent/deliver/outbox.js';
import { createTransport } from '../agent/deliver/transport.js';
import type { Transport } from '../agent/deliver/transport.js';
import { openStateDb } from '../agent/state-db.js';
import { startNginx } from './helpers/nginx.js';
import type { Nginx } from './helpers/nginx.js';
import { freePort, killAll, startServerChild, waitFor } from './helpers/processes.js';
import { STORE_BACKENDS } from './helpers/store-backends.js';
import { expectExactlyOnceInOrder } from './helpers/report-history.js';
import { makeTinyRoot } from './helpers/tiny-root.js';
import type { TinyRoot } from './helpers/tiny-root.js';

let tiny: TinyRoot;
let nginx: Nginx | undefined;
beforeAll(() => {
  tiny = makeTinyRoot();
  // The nodes of one PostgreSQL database seal sink secrets with one key file; the children inherit where.
  process.env['QUICKSAND_SINK_KEY_FILE'] = path.join(tiny.dir, 'postgres.sinks.key');
});
afterEach(async () => {
  await nginx?.stop();
  nginx = undefined;
  killAll();
});
afterAll(() => tiny.remove());


describe.each(STORE_BACKENDS)('nodes on one $name database behind nginx', (backend) => {
  it('spreads agents over three nodes, and when one is killed -9 in mid-stream its agents go on through the other two: every report once, in order', async () => {
    const dir = path.join(tiny.dir, `balanced-${backend.name}`);
    mkdirSync(dir, { recursive: true });
    const fresh = await backend.fresh();
    const { db, store } = fresh;
    const ids = ['node-a', 'node-b', 'node-c'];
    const ports: number[] = [];
    const nodes: Awaited<ReturnType<typeof startServerChild>>[] = [];
    for (const id of ids) {
      ports.push(await freePort());
      nodes.push(await startServerChild(db, ports.at(-1)!, ['--node-id', id]));
    }
    nginx = await startNginx(ports.map((p) => `127.0.0.1:${p}`));
    const apiToken = await store.createApiToken('auditor', new Date());

    // Each request may go to either node: both answer /healthz with their own id.
    const answered = new Set<string>();
    for (let i = 0; i < 9; i++) {
      const res = await fetch(`${nginx.url}/healthz`);
      // Two processes writing one SQLite file (SQLite is the single-node backend) may find the
      // write lock held by the other longer than the probe waits; PostgreSQL takes both at once.
      expect(backend.name === 'postgres' ? [200] : [200, 503]).toContain(res.status);
      answered.add(((await res.json()) as { node: string }).node);
    }
    expect([...answered].sort()).toEqual(ids);

    const report = await tiny.scan('balanced');
    const perAgent = 170;
    const agents: Array<{ agentId: string; transport: Transport; depth: () => number; close: () => void }> = [];
    for (let i = 0; i < 6; i++) {
      const secret = await store.createEnrollSecret(new Date());
      const config = await enrollAgent(nginx.url, secret, `balanced-${i}`);
      const stateDb = openStateDb(path.join(dir, `agent-${i}`));
      const outbox = createOutbox(stateDb);
      for (let n = 0; n < perAgent; n++) outbox.enqueue(report, 'full', new Date());
      const transport = createTransport({ config, outbox, host: { hostname: `balanced-${i}` }, image: report.image, backoff: { firstMaxMs: 100, baseMs: 200, capMs: 1000 } });
      agents.push({ agentId: config.agentId, transport, depth: () => outbox.depth(), close: () => stateDb.close() });
    }
    try {
      for (const a of agents) a.transport.start();
      // nginx spreads the upgrades over the nodes; the sessions say which holds which.
      const sessions = await waitFor('every agent to hold a session', async () => {
        const s = await store.cluster.listSessions(new Date(Date.now() - 30_000));
        return s.length === agents.length && s;
      });
      expect(new Set(sessions.map((s) => s.nodeId))).toEqual(new Set(ids));
      await waitFor('reports in flight', () => agents.some((a) => a.depth() < perAgent), 30_000, 5);

      // The node whose agents have the most reports still waiting: acks are cumulative, one per
      // stored batch, so a lucky node's agents can be drained before the kill lands.
      const waiting = (nodeId: string): number =>
        sessions.filter((s) => s.nodeId === nodeId).reduce((n, s) => n + agents.find((a) => a.agentId === s.agentId)!.depth(), 0);
      const killed = [...ids].sort((x, y) => waiting(y) - waiting(x))[0]!;
      const victims = sessions.filter((s) => s.nodeId === killed).map((s) => s.agentId);
      await nodes[ids.indexOf(killed)]!.kill('SIGKILL');
      // Really mid-stream: the dead node's agents still had reports waiting.
      expect(agents.filter((a) => victims.includes(a.agentId)).some((a) => a.depth() > 0)).toBe(true);
      await waitFor('every outbox to drain', () => agents.every((a) => a.depth() === 0), 60_000, 50);
      const after = await waitFor('the moved agents to hold sessions on the other nodes', async () => {
        const s = await store.cluster.listSessions(new Date(0));
        return s.filter((x) => x.nodeId !== killed).length === agents.length && s;
      });
      expect(after.every((s) => s.nodeId !== killed && ids.includes(s.nodeId))).toBe(true);
      for (const a of agents) await expectExactlyOnceInOrder(nginx.url, apiToken, a.agentId, perAgent);
    } finally {
      for (const a of agents) {
        await a.transport.stop();
        a.close();
      }
      for (const n of nodes) await n.kill('SIGKILL');
      await fresh.drop();
    }
    expect(nginx.errorLog()).not.toMatch(/\[(emerg|alert|crit)\]/);
  });
});
