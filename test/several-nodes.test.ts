// Several server nodes on one database: real servers on loopback sharing one database, agents on
// different nodes. Commands asked through one node reach an agent on another, a revoked agent is
// cut off wherever it is, scheduled jobs run on one node at a time, and each alert delivery goes
// out once however many delivery loops run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startServer } from '../server/server.js';
import type { RunningServer, ServerOptions } from '../server/server.js';
import { callApi } from './helpers/api.js';
import { startReceiver } from './helpers/http-receiver.js';
import type { Receiver } from './helpers/http-receiver.js';
import { waitFor } from './helpers/processes.js';
import { openStream } from './helpers/stream-client.js';
import { STORE_BACKENDS, reportFrame } from './helpers/store-backends.js';
import type { Finding } from '../shared/report.js';
import type { FreshStore, StoreBackend } from './helpers/store-backends.js';
import type { Client } from './helpers/stream-client.js';

const HEARTBEAT_MS = 200;

let fresh: FreshStore;
let nodes: RunningServer[];
let receiver: Receiver | undefined;
const streams: Client[] = [];
// Every node of one database seals sink secrets with the same key: PostgreSQL's is a file in the
// data folder they share.
let dataDir: string;

async function startNodes(n: number, extra: Partial<ServerOptions> = {}): Promise<RunningServer[]> {
  for (let i = 0; i < n; i++) {
    nodes.push(await startServer({ db: fresh.db, dataDir, port: 0, host: '127.0.0.1', nodeId: `node-${'abc'[i]}`, nodeHeartbeatMs: HEARTBEAT_MS, schedules: false, ...extra }));
  }
  return nodes;
}

/** An enrolled agent's stream on `node`, after its hello. */
async function agentOn(node: RunningServer, hostname: string): Promise<{ agentId: string; client: Client }> {
  const secret = await node.store.createEnrollSecret(new Date());
  const enrolled = (await node.store.enrollAgent(secret, hostname, new Date()))!;
  const client = await openStream(node.url, enrolled.token);
  streams.push(client);
  client.ws.send(JSON.stringify({ type: 'hello', protocol: 1, agentId: enrolled.agentId, host: { hostname }, image: { name: 'web', version: '42' }, lastAckedSeq: 0, outboxDepth: 0 }));
  return { agentId: enrolled.agentId, client };
}

describe.each(STORE_BACKENDS)('several nodes on one $name database', (backend: StoreBackend) => {
  // On PostgreSQL a command is announced by NOTIFY: heartbeats far apart prove it is what carried it.
  const announced = backend.name === 'postgres';
  beforeEach(async () => {
    fresh = await backend.fresh();
    dataDir = mkdtempSync(`${tmpdir()}/quicksand-nodes-`);
    nodes = [];
  });
  afterEach(async () => {
    for (const c of streams.splice(0)) c.ws.terminate();
    for (const n of nodes) await n.close();
    await receiver?.close();
    receiver = undefined;
    await fresh.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('sends scan-now asked through node B to the agent on node A, says it is connected there, and cuts it off when revoked through B', async () => {
    const [a, b] = (await startNodes(2, announced ? { nodeHeartbeatMs: 60_000 } : {})) as [RunningServer, RunningServer];
    const admin = await a.store.createApiToken('admin', new Date());
    const { agentId, client } = await agentOn(a, 'on-a');
    await waitFor('the session to be recorded', async () => (await b.store.cluster.sessionOf(agentId, new Date(Date.now() - 3 * HEARTBEAT_MS)))?.nodeId === 'node-a');
    expect((await callApi(b.url, 'GET', `/api/v1/hosts/${agentId}`, admin)).json.connected).toBe(true);
    // Each node names itself in /healthz and on its metrics.
    const health = (await (await fetch(`${b.url}/healthz`)).json()) as { ok: boolean; node: string };
    expect(health.node).toBe('node-b');
    // Two processes writing one SQLite file (not a deployment: SQLite is the single-node backend)
    // may find the write lock held by the other for longer than the probe waits.
    if (announced) expect(health.ok).toBe(true);
    expect(await (await fetch(`${a.url}/metrics`)).text()).toMatch(/^quicksand_agents_connected\{node="node-a"\} 1$/m);

    const asked = Date.now();
    expect((await callApi(b.url, 'POST', `/api/v1/hosts/${agentId}/scan-now`, admin)).status).toBe(202);
    const command = await client.next((f) => f.type === 'command', announced ? 1_000 : 5_000);
    expect(command).toMatchObject({ type: 'command', command: 'scan-now' });
    if (announced) expect(Date.now() - asked).toBeLessThan(1_000);
    // Delivered once: no second copy at the next heartbeats.
    await new Promise((r) => setTimeout(r, 3 * HEARTBEAT_MS));
    expect(client.frames.filter((f) => f.type === 'command')).toHaveLength(1);

    expect((await callApi(b.url, 'DELETE', `/api/v1/agents/${agentId}`, admin)).status).toBe(200);
    expect(await client.closed).toBe(4003);
    await waitFor('the session to go', async () => (await b.store.cluster.sessionOf(agentId, new Date(0))) === null);
    expect((await callApi(b.url, 'POST', `/api/v1/hosts/${agentId}/scan-now`, admin)).status).toBe(409);
  });

  it('delivers at hello what was queued for an agent while no node held it, once, on the node it connects to', async () => {
    // Heartbeats far apart: what delivers it is the hello, not the heartbeat's catch-up.
    const [a, b] = (await startNodes(2, { nodeHeartbeatMs: 60_000 })) as [RunningServer, RunningServer];
    const enrolled = (await a.store.enrollAgent(await a.store.createEnrollSecret(new Date()), 'away', new Date()))!;
    const now = new Date();
    const row = await a.store.cluster.queueCommand({ agentId: enrolled.agentId, command: 'scan-now', now, expiresAt: new Date(now.getTime() + 60_000) });
    const client = await openStream(b.url, enrolled.token);
    streams.push(client);
    client.ws.send(JSON.stringify({ type: 'hello', protocol: 1, agentId: enrolled.agentId, host: { hostname: 'away' }, image: { name: 'web', version: '42' }, lastAckedSeq: 0, outboxDepth: 0 }));
    expect(await client.next((f) => f.type === 'command')).toEqual({ type: 'command', command: 'scan-now', id: String(row.id) });
    expect(await a.store.cluster.pendingCommandsFor([enrolled.agentId], new Date())).toEqual([]);
    await new Promise((r) => setTimeout(r, 300));
    expect(client.frames.filter((f) => f.type === 'command')).toHaveLength(1);
  });

  it('runs a scheduled job on one node at a time, hands it on when that node stops, and sends each delivery once with three delivery loops', async () => {
    receiver = await startReceiver();
    // Every node ticks the digest every second; the lease decides which one runs it.
    const common = { scheduleCron: { digest: '* * * * * *' }, digestSinkId: 'digest', deliveryIntervalMs: 100, scheduleLeaseMs: 4000 } satisfies Partial<ServerOptions>;
    await startNodes(3, { ...common, schedules: true });
    await nodes[0]!.store.saveSink({ type: 'webhook', id: 'digest', url: receiver.url('/digest'), secret: 'digest-secret-0123456789', minSeverity: 'low', timeoutMs: 5000 }, new Date());
    await waitFor('three digests', async () => (await nodes[0]!.store.alertQueue.listDeliveries()).length >= 3, 15_000, 50);
    // The holder stops; after its lease ran out another node runs the digest.
    const before = (await nodes[0]!.store.alertQueue.listDeliveries()).length;
    const leader = nodes.shift()!;
    await leader.close();
    await waitFor('digests from another node', async () => (await nodes[0]!.store.alertQueue.listDeliveries()).length >= before + 2, 15_000, 50);
    for (const n of nodes) await n.schedules.stop();
    await waitFor('every digest delivered', async () => (await nodes[0]!.store.alertQueue.listDeliveries()).every((d) => d.state === 'delivered'), 15_000, 50);
    const deliveries = await nodes[0]!.store.alertQueue.listDeliveries();
    // One run per second whichever node ran it: never two digests queued within one tick.
    const seconds = deliveries.map((d) => d.createdAt.slice(0, 19));
    expect(new Set(seconds).size).toBe(deliveries.length);
    // Each delivery went out once, though three loops (then two) looked at the queue.
    expect(receiver.requests).toHaveLength(deliveries.length);
  });

  it('raises one alert for one change set however many of three nodes its reports come through, and delivers it once', async () => {
    receiver = await startReceiver();
    await startNodes(3, { deliveryIntervalMs: 100 });
    await nodes[0]!.store.saveSink({ type: 'webhook', id: 'hook', url: receiver.url('/hook'), secret: 'hook-secret-0123456789', minSeverity: 'low', timeoutMs: 5000 }, new Date());
    const secret = await nodes[0]!.store.createEnrollSecret(new Date());
    const { agentId, token } = (await nodes[0]!.store.enrollAgent(secret, 'moving', new Date()))!;
    // One apt run that installed two packages with their files: one change set.
    const changeSet = 'apt 2026-12-02 04:00:00';
    const pkg = (name: string, file: string): Finding => ({
      kind: 'package-added',
      severity: 'high',
      ecosystem: 'dpkg',
      name,
      after: '1.0',
      changeSet,
      changes: [{ kind: 'file-added', severity: 'high', path: file, owner: { ecosystem: 'dpkg', name }, after: 'a'.repeat(64) }],
    });
    const findings = [pkg('curl', '/usr/bin/curl'), pkg('libcurl4', '/usr/lib/libcurl.so.4')];
    // The agent's full reports of that state, each through another node (it reconnects between them).
    for (let seq = 1; seq <= 3; seq++) {
      const node = nodes[seq - 1]!;
      const client = await openStream(node.url, token);
      streams.push(client);
      client.ws.send(JSON.stringify({ type: 'hello', protocol: 1, agentId, host: { hostname: 'moving' }, image: { name: 'web', version: '42' }, lastAckedSeq: seq - 1, outboxDepth: 1 }));
      client.ws.send(JSON.stringify(reportFrame(agentId, seq, 'full', findings, new Date())));
      expect(await client.next((f) => f.type === 'ack' || f.type === 'error')).toEqual({ type: 'ack', seq });
      client.ws.close();
    }
    await waitFor('the alert delivered', () => receiver!.requests.length >= 1, 15_000, 50);
    // Three delivery loops had time to look at the queue again.
    await new Promise((r) => setTimeout(r, 500));
    const triggers = (await nodes[0]!.store.alertQueue.listDeliveries()).filter((d) => d.alert.action === 'trigger');
    expect(triggers).toHaveLength(1);
    expect(triggers[0]!.state).toBe('delivered');
    expect(receiver.requests).toHaveLength(1);
    expect(receiver.requests[0]!.body.toString()).toContain('curl');
  });
});
