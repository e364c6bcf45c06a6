// The server's schedules against a real SQLite file, a real agent stream and a real webhook
// receiver on loopback; the clock is injected and the jobs are run as cron would run them.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { createOutbox } from '../agent/deliver/outbox.js';
import { openStateDb } from '../agent/state-db.js';
import { createTransport } from '../agent/deliver/transport.js';
import type { AuditEntry, HostSummary } from '../shared/api.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { startReceiver } from './helpers/http-receiver.js';
import type { Receiver } from './helpers/http-receiver.js';
import { waitFor } from './helpers/processes.js';
import { makeTinyRoot } from './helpers/tiny-root.js';
import type { TinyRoot } from './helpers/tiny-root.js';

let clock = Date.parse('2026-11-01T07:00:00Z');
const now = (): Date => new Date(clock);
let tiny: TinyRoot;
let work: string;
let server: RunningServer;
let receiver: Receiver;
let admin: string;
let hostId: string;

beforeAll(async () => {
  tiny = makeTinyRoot();
  receiver = await startReceiver();
  work = mkdtempSync(path.join(tmpdir(), 'quicksand-schedules-'));
  server = await startServer({ db: path.join(work, 'server.db'), port: 0, host: '127.0.0.1', now, schedules: false, retentionDays: 30, digestSinkId: 'digest', deliveryIntervalMs: 60_000 });
  admin = await server.store.createApiToken('admin', now());
  const res = await fetch(`${server.url}/api/v1/sinks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'webhook', id: 'digest', url: receiver.url('/digest'), secret: 'digest-secret-0123456789' }),
  });
  expect(res.status).toBe(201);
  const config = await enrollAgent(server.url, await server.store.createEnrollSecret(now()), 'quiet-host');
  hostId = config.agentId;
  const db = openStateDb(path.join(work, 'agent'));
  const outbox = createOutbox(db);
  const report = await tiny.scan('quiet-host');
  for (let i = 0; i < 3; i++) outbox.enqueue(report, 'full', now());
  let acked = 0;
  const transport = createTransport({ config, outbox, host: { hostname: 'quiet-host' }, image: report.image, onAck: (seq) => (acked = seq) });
  transport.start();
  await waitFor('the reports acked', () => acked >= 3, 15_000, 20);
  await transport.stop();
  db.close();
});
afterAll(async () => {
  await server?.close();
  await receiver?.close();
  if (work) rmSync(work, { recursive: true, force: true });
  tiny?.remove();
});

describe('server schedules', () => {
  it('marks a host stale once its reports stop, once, with an audit entry', async () => {
    expect(await server.store.triage.markStale(new Date(clock - 3_600_000), now())).toEqual([]);
    clock += 3 * 3_600_000;
    expect(await server.schedules.run('stale')).toEqual([hostId]);
    expect(await server.schedules.run('stale')).toEqual([]);
    const entries: AuditEntry[] = (await server.store.triage.listAudit({ limit: 100, action: 'host-stale' })).entries;
    expect(entries).toMatchObject([{ actor: 'system', target: `host:${hostId}` }]);
  });

  it('sends the daily digest to its sink through the delivery queue', async () => {
    expect(await server.schedules.run('digest')).toEqual({ queued: 'quicksand:digest:2026-11-01' });
    await server.deliveries.tick();
    expect(receiver.requests).toHaveLength(1);
    const body = JSON.parse(receiver.requests[0]!.body.toString('utf8'));
    expect(body.alert.title).toMatch(/^Quicksand digest 2026-11-01: 0 pets, 0 cattle, 1 stale/);
  });

  it('prunes history past the retention but keeps each host its last report', async () => {
    expect(await server.store.listReports(hostId)).toHaveLength(3);
    expect(await server.schedules.run('prune')).toEqual({ reports: 0, findings: 0, alerts: 0 });
    clock += 31 * 86_400_000;
    expect(await server.schedules.run('prune')).toEqual({ reports: 2, findings: 0, alerts: 0 });
    expect((await server.store.listReports(hostId)).map((r) => r.seq)).toEqual([3]);
    const hosts: HostSummary[] = await server.store.listHosts({}, now());
    expect(hosts.map((h) => h.status)).toEqual(['stale']);
  });
});
