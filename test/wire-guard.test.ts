// The stream's edge: who may connect, what a connection may say, and what a flood gets. A real
// server on a loopback port with a real SQLite file; raw ws clients play good and bad agents.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../shared/protocol.js';
import type { ServerFrame } from '../shared/protocol.js';
import type { Report } from '../shared/report.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { makeTinyRoot } from './helpers/tiny-root.js';
import type { TinyRoot } from './helpers/tiny-root.js';
import { connectStream, openStream } from './helpers/stream-client.js';
import type { Attempt, Client } from './helpers/stream-client.js';

const MAX_FRAME = 64 * 1024;
let dir: string;
let server: RunningServer;
let tiny: TinyRoot;
let report: Report;
let secret: string;
let admin: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'quicksand-guard-'));
  tiny = makeTinyRoot();
  report = await tiny.scan('guard-host');
  server = await startServer({ db: path.join(dir, 'server.db'), port: 0, host: '127.0.0.1', maxFrameBytes: MAX_FRAME, upgradeRate: 20, upgradeBurst: 40 });
  secret = await server.store.createEnrollSecret(new Date());
  admin = await server.store.createApiToken('admin', new Date());
});
afterAll(async () => {
  await server.close();
  tiny.remove();
  rmSync(dir, { recursive: true, force: true });
});

async function enroll(hostname: string): Promise<{ agentId: string; token: string }> {
  return (await server.store.enrollAgent(secret, hostname, new Date()))!;
}

const connect = (token: string | null, base = server.url): Promise<Attempt> => connectStream(base, token);
const open = (token: string): Promise<Client> => openStream(server.url, token);

function hello(agentId: string): string {
  return JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, agentId, host: { hostname: 'h' }, image: report.image, lastAckedSeq: 0, outboxDepth: 0 });
}

function reportFrame(agentId: string, seq: number, prevHash: string | null, hash: string): string {
  return JSON.stringify({ type: 'report', agentId, seq, prevHash, hash, kind: 'full', report });
}

const h = (n: number): string => n.toString(16).padStart(64, '0');

async function storedSeqs(agentId: string): Promise<number[]> {
  return (await server.store.listReports(agentId)).map((r) => r.seq);
}

describe('stream authentication', () => {
  it('refuses an upgrade without a token with 401', async () => {
    const a = await connect(null);
    expect(a.status).toBe(401);
    expect('body' in a && a.body).toContain('AGENT_TOKEN_INVALID');
  });

  it('refuses a wrong token and a token of the wrong kind with 401', async () => {
    const { agentId } = await enroll('wrong-token');
    expect((await connect(`qsa.${agentId}.${'A'.repeat(43)}`)).status).toBe(401);
    expect((await connect(admin)).status).toBe(401);
    expect((await connect('not-a-token')).status).toBe(401);
  });

  it('refuses a revoked token with 401 and cuts its open connection', async () => {
    const { agentId, token } = await enroll('revoked');
    const c = await open(token);
    const res = await fetch(`${server.url}/api/v1/agents/${agentId}`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } });
    expect(res.status).toBe(200);
    expect(await c.closed).toBe(4003);
    const again = await connect(token);
    expect(again.status).toBe(401);
    expect('body' in again && again.body).toContain('AGENT_TOKEN_REVOKED');
  });

  it('never lets the token of host A report for host B', async () => {
    const a = await enroll('host-a');
    const b = await enroll('host-b');
    const c = await open(a.token);
    c.ws.send(hello(a.agentId));
    c.ws.send(reportFrame(b.agentId, 1, null, h(1)));
    const err = await c.next((f) => f.type === 'error');
    expect(err).toMatchObject({ type: 'error', code: 'HOST_MISMATCH' });
    expect(await c.closed).toBe(1008);
    expect(await storedSeqs(a.agentId)).toEqual([]);
    expect(await storedSeqs(b.agentId)).toEqual([]);
    // A hello naming another host is refused the same way.
    const c2 = await open(a.token);
    c2.ws.send(hello(b.agentId));
    expect(await c2.closed).toBe(1008);
  });
});

describe('frames', () => {
  it('answers malformed, unknown, invalid and oversized frames with errors, then closes with 1008, while serving others', async () => {
    const good = await enroll('good');
    const bad = await enroll('bad');
    const g = await open(good.token);
    g.ws.send(hello(good.agentId));
    const b = await open(bad.token);
    b.ws.send(hello(bad.agentId));

    b.ws.send('{not json');
    expect(await b.next((f) => f.type === 'error')).toMatchObject({ code: 'FRAME_MALFORMED' });
    g.ws.send(reportFrame(good.agentId, 1, null, h(1)));
    expect(await g.next((f) => f.type === 'ack')).toEqual({ type: 'ack', seq: 1 });

    b.ws.send(JSON.stringify({ type: 'gossip' }));
    expect(await b.next((f) => f.type === 'error' && f.code === 'FRAME_UNKNOWN')).toMatchObject({ message: expect.stringContaining('gossip') });
    g.ws.send(reportFrame(good.agentId, 2, h(1), h(2)));
    expect(await g.next((f) => f.type === 'ack' && f.seq === 2)).toBeTruthy();

    b.ws.send(JSON.stringify({ type: 'report', agentId: bad.agentId, seq: -1, prevHash: null, hash: h(1), kind: 'full', report }));
    const invalid = await b.next((f) => f.type === 'error' && f.code === 'FRAME_INVALID');
    expect(invalid.type === 'error' && invalid.message).toContain('seq:');
    expect(await b.closed).toBe(1008);
    expect(await storedSeqs(bad.agentId)).toEqual([]);

    const t = await open(bad.token);
    t.ws.send(hello(bad.agentId));
    t.ws.send(JSON.stringify({ type: 'heartbeat', outboxDepth: 0, pad: 'x'.repeat(MAX_FRAME) }));
    expect(await t.next((f) => f.type === 'error')).toMatchObject({ code: 'FRAME_TOO_LARGE' });
    // Far over the limit: not even read, the connection is closed with 1009.
    t.ws.send('x'.repeat(MAX_FRAME * 3));
    expect(await t.closed).toBe(1009);

    g.ws.send(reportFrame(good.agentId, 3, h(2), h(3)));
    expect(await g.next((f) => f.type === 'ack' && f.seq === 3)).toBeTruthy();
    expect(await storedSeqs(good.agentId)).toEqual([1, 2, 3]);
    g.ws.close();
  });

  it('wants hello before reports, and acks a replayed report without storing it twice', async () => {
    const a = await enroll('replay');
    const c = await open(a.token);
    c.ws.send(reportFrame(a.agentId, 1, null, h(1)));
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'HELLO_REQUIRED', seq: 1 });
    c.ws.send(hello(a.agentId));
    c.ws.send(reportFrame(a.agentId, 1, null, h(1)));
    c.ws.send(reportFrame(a.agentId, 1, null, h(1)));
    // Both in one batch or in two: acked (cumulatively) either way, stored once.
    await c.next((f) => f.type === 'ack' && f.seq === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(await storedSeqs(a.agentId)).toEqual([1]);
    c.ws.close();
  });

  it('records a broken report chain as a finding on that host', async () => {
    const a = await enroll('chain');
    const c = await open(a.token);
    c.ws.send(hello(a.agentId));
    c.ws.send(reportFrame(a.agentId, 1, null, h(1)));
    c.ws.send(reportFrame(a.agentId, 2, h(99), h(2))); // names a predecessor that is not report 1
    c.ws.send(reportFrame(a.agentId, 4, h(2), h(4))); // report 3 never came
    c.ws.send(reportFrame(a.agentId, 1, null, h(11))); // seq 1 again, other content: a reset outbox
    // Acks are cumulative (one per batch): the last report (seq 1 again) is acked by the ack of seq 4 or a later one.
    await c.next((f) => f.type === 'ack' && f.seq === 4);
    await new Promise((r) => setTimeout(r, 100));
    const findings = (await server.store.listFindings(a.agentId, { state: 'open' }, new Date()))!.filter((f) => f.kind === 'report-chain-broken');
    expect(findings.map((f) => (f.detail as { seq: number }).seq)).toEqual([2, 4, 1]);
    expect((findings[2]!.detail as { reason: string }).reason).toContain('sent again with other content');
    expect(await storedSeqs(a.agentId)).toEqual([1, 2, 4]);
    expect(await server.store.getHost(a.agentId, new Date())).toMatchObject({ status: 'pet' });
    c.ws.close();
  });
});

describe('upgrade flood', () => {
  it('answers every upgrade of a flood with 101 or 503 + Retry-After and keeps serving connected agents', async () => {
    const steady = await enroll('steady');
    const s = await open(steady.token);
    s.ws.send(hello(steady.agentId));
    const flooders = await Promise.all(Array.from({ length: 20 }, (_, i) => enroll(`flood-${i}`)));
    // Let the limiter's bucket refill from the connections opened by the tests before.
    await new Promise((r) => setTimeout(r, 2500));

    let seq = 0;
    let prev: string | null = null;
    const steadyAcks: Promise<ServerFrame>[] = [];
    const ticker = setInterval(() => {
      seq++;
      s.ws.send(reportFrame(steady.agentId, seq, prev, h(seq)));
      prev = h(seq);
      const n = seq;
      steadyAcks.push(s.next((f) => f.type === 'ack' && f.seq >= n, 15_000));
    }, 25);
    const attempts = await Promise.all(Array.from({ length: 400 }, (_, i) => connect(flooders[i % flooders.length]!.token)));
    clearInterval(ticker);

    const upgraded = attempts.filter((a) => a.status === 101);
    const busy = attempts.filter((a) => a.status === 503);
    expect(upgraded.length + busy.length).toBe(attempts.length);
    expect(upgraded.length).toBeGreaterThan(0);
    expect(busy.length).toBeGreaterThan(300);
    for (const a of busy) expect(Number('retryAfter' in a ? a.retryAfter : NaN)).toBeGreaterThanOrEqual(1);
    await Promise.all(steadyAcks);
    expect(await storedSeqs(steady.agentId)).toEqual(Array.from({ length: seq }, (_, i) => i + 1));
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    for (const a of upgraded) if ('client' in a) a.client.ws.terminate();
    s.ws.close();
  });
});

describe('a store that cannot answer', () => {
  it('answers an upgrade with 503 + Retry-After instead of crashing or leaving the socket hanging', async () => {
    const other = await startServer({ db: path.join(dir, 'gone.db'), port: 0, host: '127.0.0.1' });
    try {
      const { token } = (await other.store.enrollAgent(await other.store.createEnrollSecret(new Date()), 'away', new Date()))!;
      const before = await connect(token, other.url);
      expect(before.status).toBe(101);
      if ('client' in before) before.client.ws.terminate();
      // The database goes away under the stream: the token check rejects.
      await other.store.close();
      const after = await connect(token, other.url);
      expect(after).toMatchObject({ status: 503, retryAfter: '5' });
      expect('body' in after && after.body).toContain('SERVER_BUSY');
    } finally {
      await other.close();
    }
  });
});
