// The server against hostile and careless clients (issue 11): a real server on loopback with a
// real SQLite file, raw sockets playing attackers. One case per item, plus the cases that held
// before, so they keep holding. Every case is bounded in count and time.
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../shared/protocol.js';
import type { ServerFrame } from '../shared/protocol.js';
import { REPORT_SCHEMA, summarize } from '../shared/report.js';
import type { Finding, Report } from '../shared/report.js';
import { runServerCli } from '../server/cli.js';
import { startServer } from '../server/server.js';
import { createSqliteStore } from '../server/store/sqlite-store.js';
import type { RunningServer, ServerOptions } from '../server/server.js';
import { callApi } from './helpers/api.js';
import { startReceiver } from './helpers/http-receiver.js';
import type { Receiver } from './helpers/http-receiver.js';
import { connectStream, openStream } from './helpers/stream-client.js';
import type { Client } from './helpers/stream-client.js';

let dir: string;
let server: RunningServer;
let secret: string;
let admin: string;
let auditor: string;
let receiver: Receiver;
const logLines: string[] = [];

const h = (n: number): string => n.toString(16).padStart(64, '0');

async function start(over: Partial<ServerOptions> = {}, db = path.join(dir, `s-${Math.random().toString(36).slice(2)}.db`)): Promise<RunningServer> {
  return startServer({ db, port: 0, host: '127.0.0.1', schedules: false, deliveryIntervalMs: 3_600_000, log: (l) => logLines.push(l), ...over });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'quicksand-hostile-'));
  receiver = await startReceiver(200);
  server = await start({}, path.join(dir, 'server.db'));
  secret = await server.store.createEnrollSecret(new Date());
  admin = await server.store.createApiToken('admin', new Date());
  auditor = await server.store.createApiToken('auditor', new Date());
});
afterAll(async () => {
  await server.close();
  await receiver.close();
  rmSync(dir, { recursive: true, force: true });
});

const secrets = new WeakMap<RunningServer, string>();
async function enroll(hostname: string, on: RunningServer = server): Promise<{ agentId: string; token: string }> {
  if (!secrets.has(on)) secrets.set(on, on === server ? secret : await on.store.createEnrollSecret(new Date()));
  return (await on.store.enrollAgent(secrets.get(on)!, hostname, new Date()))!;
}

function report(findings: Finding[], hostname = 'h'): Report {
  return {
    schema: REPORT_SCHEMA,
    image: { name: 'web', version: '1' },
    host: { hostname, root: '/' },
    scannedAt: new Date().toISOString(),
    summary: summarize(findings),
    stats: { files: 1, packages: 1, bytesHashed: 0, durationMs: 1 },
    findings,
    warnings: [],
  };
}

const hello = (agentId: string): string =>
  JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, agentId, host: { hostname: 'h' }, image: { name: 'web', version: '1' }, lastAckedSeq: 0, outboxDepth: 0 });

const reportFrame = (agentId: string, seq: number, findings: Finding[] = []): string =>
  JSON.stringify({ type: 'report', agentId, seq, prevHash: seq === 1 ? null : h(seq - 1), hash: h(seq), kind: 'full', report: report(findings) });

/** An agent that said hello and can report. */
async function agent(name: string, on: RunningServer = server, opts: { localAddress?: string } = {}): Promise<{ agentId: string; c: Client }> {
  const { agentId, token } = await enroll(name, on);
  const c = await openStream(on.url, token, opts);
  c.ws.send(hello(agentId));
  return { agentId, c };
}

/** Proves the server still serves: a fresh agent's report is stored and acked. */
async function stillServing(on: RunningServer = server): Promise<void> {
  const { agentId, c } = await agent(`alive-${Math.random()}`, on);
  c.ws.send(reportFrame(agentId, 1));
  expect(await c.next((f) => f.type === 'ack' && f.seq === 1)).toBeTruthy();
  c.ws.close();
  expect((await fetch(`${on.url}/healthz`)).status).toBe(200);
}

/** A raw HTTP exchange: sends `head` (and `body` if given), resolves with what came back. */
function rawHttp(url: string, head: string, body?: (socket: Socket) => void, timeoutMs = 5000): Promise<{ text: string; closed: boolean }> {
  const u = new URL(url);
  const socket = netConnect(Number(u.port), u.hostname);
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('error', () => {});
  socket.write(head);
  body?.(socket);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false });
    }, timeoutMs);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
  });
}

/** Polls /healthz until it answers 200 or `ms` pass; the last status. */
async function readyWithin(on: RunningServer, ms: number): Promise<number> {
  const until = Date.now() + ms;
  let status = 0;
  while (status !== 200 && Date.now() < until) {
    status = (await fetch(`${on.url}/healthz`)).status;
    if (status !== 200) await new Promise((r) => setTimeout(r, 100));
  }
  return status;
}

const statusOf = (text: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);

describe('what held before keeps holding', () => {
  it('refuses an upgrade without a token, and a frame for another host closes the connection', async () => {
    expect((await connectStream(server.url, null)).status).toBe(401);
    const a = await agent('holds-a');
    const b = await enroll('holds-b');
    a.c.ws.send(reportFrame(b.agentId, 1));
    expect(await a.c.next((f) => f.type === 'error')).toMatchObject({ code: 'HOST_MISMATCH' });
    expect(await a.c.closed).toBe(1008);
  });

  it('keeps SQL out of hostnames and auditors out of admin routes', async () => {
    const { agentId } = await enroll("x'); DROP TABLE hosts;--");
    expect((await server.store.getHost(agentId, new Date()))?.hostname).toBe("x'); DROP TABLE hosts;--");
    expect((await callApi(server.url, 'GET', '/api/v1/sinks', auditor)).status).toBe(403);
    expect((await callApi(server.url, 'DELETE', `/api/v1/agents/${agentId}`, auditor)).status).toBe(403);
  });
});

describe('1: frames cannot crash the server', () => {
  it('answers a report whose changes nest 5000 levels deep with FRAME_INVALID and keeps serving', async () => {
    // Built as text: a value this deep overflows JSON.stringify's stack too.
    const levels = 5000;
    const open = '{"kind":"package-added","severity":"high","ecosystem":"dpkg","name":"p","changes":[';
    const deep = `${open.repeat(levels)}{"kind":"file-added","severity":"high","path":"/x"}${']}'.repeat(levels)}`;
    const { agentId, c } = await agent('deep');
    const text = reportFrame(agentId, 1).replace('"findings":[]', `"findings":[${deep}]`);
    expect(text.length).toBeLessThan(512 * 1024);
    c.ws.send(text);
    const err = await c.next((f) => f.type === 'error');
    expect(err).toMatchObject({ code: 'FRAME_INVALID', message: expect.stringContaining('deeper than') });
    await stillServing();
  });

  it('refuses strings and arrays beyond their bounds with the field named', async () => {
    const { agentId, c } = await agent('wide');
    const frame = JSON.parse(reportFrame(agentId, 1)) as { report: Report };
    frame.report.host.hostname = 'h'.repeat(100_000);
    c.ws.send(JSON.stringify(frame));
    const err = await c.next((f) => f.type === 'error');
    expect(err).toMatchObject({ code: 'FRAME_INVALID', message: expect.stringContaining('report.host.hostname') });
    c.ws.close();
  });
});

describe('2: bodies are limited before they are read', () => {
  it('refuses a 50 MiB Content-Length on /api/v1/enroll with 413 before the body is sent', async () => {
    const res = await rawHttp(server.url, `POST /api/v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${50 * 1024 * 1024}\r\n\r\n{`, undefined, 3000);
    expect(statusOf(res.text)).toBe(413);
    expect(res.text).toContain('BODY_TOO_LARGE');
  });

  it('refuses a chunked body without Content-Length once it passes 1 MiB, and closes the connection', async () => {
    let sent = 0;
    const chunk = Buffer.alloc(256 * 1024, 0x20);
    const res = await rawHttp(
      server.url,
      `POST /api/v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
      (socket) => {
        const pump = (): void => {
          while (sent < 50 * 1024 * 1024 && !socket.destroyed) {
            sent += chunk.length;
            socket.write(`${chunk.length.toString(16)}\r\n`);
            socket.write(chunk);
            if (!socket.write('\r\n')) return void socket.once('drain', pump);
          }
          socket.end('0\r\n\r\n');
        };
        pump();
      },
      10_000,
    );
    expect(statusOf(res.text)).toBe(413);
    expect(res.closed).toBe(true);
    expect(sent).toBeLessThan(50 * 1024 * 1024);
  });

  it('keeps the larger limit where a manifest travels', async () => {
    const res = await rawHttp(server.url, `POST /api/v1/images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin}\r\nContent-Type: application/json\r\nContent-Length: ${5 * 1024 * 1024}\r\n\r\n{}`, undefined, 1000);
    // Accepted for reading: no 413 while the rest of the 5 MiB has not come.
    expect(statusOf(res.text)).not.toBe(413);
  });
});

describe('3: large uploads do not block the server', () => {
  it('answers /healthz while a 37 MB manifest is parsed and stored', async () => {
    const files = Array.from({ length: 200_000 }, (_, i) => ({ path: `/usr/share/doc/package-${i % 997}/file-${i}.txt`, type: 'file', mode: '0644', uid: 0, gid: 0, size: i, sha256: h(i) }));
    const body = Buffer.from(JSON.stringify({ schema: 'quicksand.manifest/v1', image: { name: 'big', version: '1', createdAt: new Date().toISOString(), source: 'root' }, packages: [], files }));
    expect(body.length).toBeGreaterThan(35e6);
    const order: string[] = [];
    const u = new URL(server.url);
    const upload = new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: u.hostname, port: u.port, path: '/api/v1/images', method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
        res.resume();
        res.on('end', () => {
          order.push('upload');
          resolve(res.statusCode ?? 0);
        });
      });
      req.on('error', reject);
      // Once the whole body is handed over, the server is parsing: ask for /healthz then.
      req.end(body, () => {
        void fetch(`${server.url}/healthz`).then((r) => order.push(`healthz ${r.status}`));
      });
    });
    expect(await upload).toBe(201);
    await new Promise((r) => setTimeout(r, 100));
    // On the serving thread the upload answered first: /healthz waited for the whole parse.
    expect(order[0]).toBe('healthz 200');
    expect((await server.store.listImages()).find((i) => i.name === 'big')).toMatchObject({ files: 200_000 });
  });
});

describe('4: credentials are never shown back', () => {
  it('refuses a sink URL with user:password@', async () => {
    const res = await callApi(server.url, 'POST', '/api/v1/sinks', admin, { type: 'webhook', id: 'creds', url: 'http://user:hunter2@127.0.0.1:9/hook', secret: 's'.repeat(32) });
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe('ALERT_SINK_INVALID');
    expect(JSON.stringify(res.json)).not.toContain('hunter2');
  });

  it('keeps sink secrets encrypted at rest, with a key file only the server can read', async () => {
    const db = path.join(dir, 'encrypted.db');
    const s = await start({}, db);
    const token = await s.store.createApiToken('admin', new Date());
    const hookSecret = 'a-webhook-secret-' + 'q'.repeat(20);
    expect((await callApi(s.url, 'POST', '/api/v1/sinks', token, { type: 'webhook', id: 'enc', url: receiver.url('/enc'), secret: hookSecret })).status).toBe(201);
    await s.close();
    const files = readdirSync(dir).filter((f) => f.startsWith('encrypted.db'));
    expect(files).toContain('encrypted.db');
    for (const f of files) expect(readFileSync(path.join(dir, f)).includes(hookSecret)).toBe(false);
    expect(statSync(`${db}.sinks.key`).mode & 0o777).toBe(0o600);
    // And the server reads it back after a restart.
    const again = await start({}, db);
    expect(await again.store.listSinks()).toMatchObject([{ id: 'enc', secret: hookSecret }]);
    await again.close();
  });

  it('encrypts plaintext sink rows of an older server and never logs a sink URL or credential', async () => {
    const db = path.join(dir, 'old-sinks.db');
    const s1 = await start({}, db);
    await s1.close();
    // A row as an older server stored it: plaintext, and a URL with user-info it used to accept.
    const raw = new Database(db);
    const old = { type: 'webhook', id: 'old', url: `http://user:hunter2@${new URL(receiver.url('/old')).host}/old`, secret: 'old-secret-old-secret-1234', minSeverity: 'low', timeoutMs: 1000 };
    raw.prepare('INSERT INTO alert_sinks (id, config, created_at) VALUES (?, ?, ?)').run('old', JSON.stringify(old), new Date().toISOString());
    raw.close();
    const s2 = await start({}, db);
    const check = new Database(db, { readonly: true });
    expect(JSON.stringify(check.prepare('SELECT config FROM alert_sinks').all())).not.toContain('old-secret');
    check.close();
    expect(readFileSync(db).includes('old-secret-old-secret')).toBe(false);
    const token = await s2.store.createApiToken('admin', new Date());
    const listed = await callApi(s2.url, 'GET', '/api/v1/sinks', token);
    expect(JSON.stringify(listed.json)).not.toContain('hunter2');
    // An alert to the old sink: its attempt fails, and neither the log nor the record names the URL.
    const { agentId, c } = await agent('creds-host', s2);
    c.ws.send(reportFrame(agentId, 1, [{ kind: 'file-added', severity: 'critical', path: '/usr/bin/evil' }]));
    await c.next((f) => f.type === 'ack');
    await s2.deliveries.tick();
    const alerts = await callApi(s2.url, 'GET', '/api/v1/alerts', token);
    expect(alerts.json.deliveries.length).toBeGreaterThan(0);
    expect(JSON.stringify(alerts.json.deliveries[0].attemptLog)).toMatch(/error/);
    expect(JSON.stringify(alerts.json)).not.toContain('hunter2');
    expect(logLines.join('\n')).not.toContain('hunter2');
    c.ws.close();
    await s2.close();
  });
});

describe('5: rule globs cannot hang ingest', () => {
  it('matches adversarial globs against long names in milliseconds while a report is ingested', async () => {
    const rules = {
      schema: 'quicksand.rules/v1',
      rules: [
        { id: 'pkg', match: { package: '*a*a*a*a*a*a*a*a*b' }, action: { type: 'severity', severity: 'low' } },
        { id: 'path', match: { path: '/*a*a*a*a*a*a*a*a*b' }, action: { type: 'suppress' } },
        { id: 'deep', match: { path: '/**/a**a**a**a**a**a**b' }, action: { type: 'suppress' } },
      ],
    };
    expect((await callApi(server.url, 'POST', '/api/v1/rules', admin, rules)).status).toBe(201);
    const { agentId, c } = await agent('globs');
    const name = 'a'.repeat(60);
    const findings: Finding[] = Array.from({ length: 20 }, (_, i) => ({ kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: `${name}${i}`, changes: [{ kind: 'file-added', severity: 'high', path: `/${name}/${'a'.repeat(40)}${i}` }] }));
    const t0 = Date.now();
    c.ws.send(reportFrame(agentId, 1, findings));
    // With the old backtracking matcher this report took minutes; a generous bound, far from it.
    expect(await c.next((f) => f.type === 'ack', 10_000)).toBeTruthy();
    expect(Date.now() - t0).toBeLessThan(5_000);
    c.ws.close();
    expect((await callApi(server.url, 'POST', '/api/v1/rules', admin, { schema: 'quicksand.rules/v1', rules: [] })).status).toBe(201);
  });
});

describe('6: unauthenticated floods do not lock agents out', () => {
  it('counts upgrades per address and refuses bad tokens before the shared budget', async () => {
    const s = await start({ upgradeRate: 5, upgradeBurst: 10 });
    const real = await enroll('behind-flood', s);
    // 300 token-less and bad-token upgrades from one address...
    const flood = await Promise.all(Array.from({ length: 300 }, (_, i) => connectStream(s.url, i % 2 === 0 ? null : 'qsa.0123456789abcdef.' + 'A'.repeat(43), { localAddress: '127.0.0.2' })));
    expect(flood.every((a) => a.status === 401 || a.status === 503)).toBe(true);
    // ...leave the budget of real agents on another address untouched.
    const ok = await Promise.all(Array.from({ length: 5 }, () => connectStream(s.url, real.token, { localAddress: '127.0.0.3' })));
    expect(ok.map((a) => a.status)).toEqual([101, 101, 101, 101, 101]);
    for (const a of ok) if ('client' in a) a.client.ws.terminate();
    await s.close();
  });

  it('caps concurrent connections per address and drops half-sent requests', async () => {
    const s = await start({ maxConnectionsPerAddress: 5, headersTimeoutMs: 1000, requestTimeoutMs: 1500 });
    const held = await Promise.all(Array.from({ length: 5 }, () => rawHttp(s.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\n', undefined, 4000)));
    // Each of the five sent half a request and was dropped by the headers timeout.
    expect(held.every((r) => r.closed)).toBe(true);
    const sockets = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const u = new URL(s.url);
        const sock = netConnect({ port: Number(u.port), host: u.hostname, localAddress: '127.0.0.4' });
        sock.on('error', () => {});
        await once(sock, 'connect');
        return sock;
      }),
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(sockets.filter((x) => x.destroyed || x.readableEnded).length).toBeGreaterThanOrEqual(3);
    for (const x of sockets) x.destroy();
    // Another address is served.
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    await s.close();
  });
});

describe('7: back-pressure', () => {
  it('bounds the ingest queue, pauses an agent whose reports wait, and loses nothing', async () => {
    const s = await start({ maxPendingPerAgent: 4, maxIngestQueue: 50 });
    const { agentId, c } = await agent('burst', s);
    const n = 200;
    for (let i = 1; i <= n; i++) c.ws.send(reportFrame(agentId, i));
    await c.next((f) => f.type === 'ack' && f.seq === n, 30_000);
    expect((await s.store.listReports(agentId)).map((r) => r.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    const peak = Number(/quicksand_ingest_queue_peak\{node="[^"]+"\} (\d+)/.exec(metrics)?.[1]);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(8);
    c.ws.close();
    await s.close();
  });

  it('holds agents while the shared queue is full instead of refusing them: every report stored, no error, no reconnect', async () => {
    // 12 agents may each have 4 reports waiting: 48, far past a queue of 10.
    const s = await start({ maxPendingPerAgent: 4, maxIngestQueue: 10 });
    const agents = await Promise.all(Array.from({ length: 12 }, (_, i) => agent(`crowd-${i}`, s)));
    const n = 60;
    const errors: ServerFrame[] = [];
    let closed = 0;
    for (const { c } of agents) {
      c.ws.on('message', (data) => {
        const f = JSON.parse(String(data)) as ServerFrame;
        if (f.type === 'error') errors.push(f);
      });
      c.ws.on('close', () => closed++);
    }
    for (let i = 1; i <= n; i++) for (const { agentId, c } of agents) c.ws.send(reportFrame(agentId, i));
    await Promise.all(agents.map(({ c }) => c.next((f) => f.type === 'ack' && f.seq === n, 30_000)));
    expect(errors).toEqual([]);
    expect(closed).toBe(0);
    for (const { agentId } of agents) expect((await s.store.listReports(agentId)).map((r) => r.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(Number(/quicksand_ingest_queue_peak\{node="[^"]+"\} (\d+)/.exec(metrics)?.[1])).toBeLessThanOrEqual(10);
    expect(Number(/quicksand_ingest_waits_total\{node="[^"]+"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(0);
    for (const { c } of agents) c.ws.close();
    await s.close();
  });

  it('counts a heartbeat flood and a replay flood as strikes', async () => {
    const { agentId, c } = await agent('chatty');
    for (let i = 0; i < 200; i++) c.ws.send(JSON.stringify({ type: 'heartbeat', outboxDepth: 0 }));
    expect(await c.closed).toBe(1008);
    const r = await agent('replayer');
    r.c.ws.send(reportFrame(r.agentId, 1));
    await r.c.next((f) => f.type === 'ack');
    for (let i = 0; i < 300; i++) r.c.ws.send(reportFrame(r.agentId, 1));
    expect(await r.c.closed).toBe(1008);
    void agentId;
  });
});

describe('8: credentials expire, run out and are revoked', () => {
  /** One enrolment over HTTP from `from`, as `quicksand-agent enroll` makes it. */
  const enrollOver = (url: string, secretText: string, from = '127.0.0.1'): Promise<number> =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify({ secret: secretText, hostname: 'h' });
      const u = new URL(url);
      const req = httpRequest({ host: u.hostname, port: u.port, path: '/api/v1/enroll', method: 'POST', localAddress: from, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });

  it('refuses a secret past its uses, past its expiry and once revoked; lists them; audits the API acts', async () => {
    let clock = new Date('2026-12-01T00:00:00Z');
    const s = await start({ now: () => clock });
    const token = await s.store.createApiToken('admin', clock);
    const made = await callApi(s.url, 'POST', '/api/v1/enroll-secrets', token, { expires: '24h', uses: 2 });
    expect(made.status).toBe(201);
    expect(made.json).toMatchObject({ maxUses: 2, expiresAt: '2026-12-02T00:00:00.000Z' });
    expect([await enrollOver(s.url, made.json.secret), await enrollOver(s.url, made.json.secret), await enrollOver(s.url, made.json.secret)]).toEqual([201, 201, 403]);
    const timed = (await callApi(s.url, 'POST', '/api/v1/enroll-secrets', token, { expires: '1h' })).json;
    const revoked = (await callApi(s.url, 'POST', '/api/v1/enroll-secrets', token, {})).json;
    expect((await callApi(s.url, 'DELETE', `/api/v1/enroll-secrets/${revoked.id}`, token)).status).toBe(200);
    expect(await enrollOver(s.url, revoked.secret)).toBe(403);
    clock = new Date('2026-12-01T02:00:00Z');
    expect(await enrollOver(s.url, timed.secret)).toBe(403);
    const listed = (await callApi(s.url, 'GET', '/api/v1/enroll-secrets', token)).json.secrets as Array<{ id: string; state: string }>;
    expect(listed.map((x) => x.state).sort()).toEqual(['expired', 'revoked', 'used-up']);
    expect(JSON.stringify(listed)).not.toContain(made.json.secret.split('.')[2]);
    // A revoked API token is refused from the next request on.
    const other = await s.store.createApiToken('auditor', clock);
    const otherId = other.split('.')[1]!;
    expect((await callApi(s.url, 'GET', '/api/v1/tokens', token)).json.tokens.map((t: { id: string }) => t.id)).toContain(otherId);
    expect((await callApi(s.url, 'DELETE', `/api/v1/tokens/${otherId}`, token)).status).toBe(200);
    expect((await callApi(s.url, 'GET', '/api/v1/hosts', other)).status).toBe(401);
    const audit = (await callApi(s.url, 'GET', '/api/v1/audit', token)).json.entries.map((e: { action: string }) => e.action);
    expect(audit).toEqual(expect.arrayContaining(['enroll-secret-create', 'enroll-secret-revoke', 'token-revoke']));
    await s.close();
  });

  it('limits enrolments per address', async () => {
    const s = await start({ enrollRatePerSec: 0.1, enrollBurst: 5 });
    const secretText = await s.store.createEnrollSecret(new Date());
    const statuses = [];
    for (let i = 0; i < 8; i++) statuses.push(await enrollOver(s.url, secretText, '127.0.0.6'));
    expect(statuses.filter((x) => x === 201)).toHaveLength(5);
    expect(statuses.filter((x) => x === 429)).toHaveLength(3);
    expect(await enrollOver(s.url, secretText, '127.0.0.7')).toBe(201);
    await s.close();
  });

  it('does the same from the command line: enroll-secret --expires --uses, list, revoke; token list, revoke', async () => {
    const db = path.join(dir, 'cli.db');
    const run = async (...args: string[]): Promise<{ code: number; out: string; err: string }> => {
      let out = '';
      let err = '';
      const code = await runServerCli([...args, '--db', db], { stdout: (t) => (out += t), stderr: (t) => (err += t), stopSignal: new Promise(() => {}) });
      return { code, out, err };
    };
    // Only `start` creates a database; the credential commands refuse one that does not exist.
    expect((await run('token', 'list')).err).toContain('does not exist');
    createSqliteStore(db).close();
    const made = await run('enroll-secret', '--expires', '24h', '--uses', '50');
    expect(made.code).toBe(0);
    const id = made.out.trim().split('.')[1]!;
    expect((await run('enroll-secret', 'list')).out).toMatch(new RegExp(`${id}\\s+active\\s+uses 0/50\\s+expires 20`));
    expect((await run('enroll-secret', '--expires', 'soon')).err).toContain('--expires');
    expect((await run('enroll-secret', 'revoke', id)).code).toBe(0);
    expect((await run('enroll-secret', 'list')).out).toContain('revoked');
    const tokenId = (await run('token', 'create', '--role', 'auditor')).out.trim().split('.')[1]!;
    expect((await run('token', 'list')).out).toContain(tokenId);
    expect((await run('token', 'revoke', tokenId)).code).toBe(0);
    expect((await run('token', 'list')).out).toMatch(new RegExp(`${tokenId}.*revoked`));
    expect((await run('token', 'revoke', tokenId)).code).not.toBe(0);
    // Audited like every act of the command line: by cli:USER, the OS user its name.
    const store = createSqliteStore(db);
    const user = userInfo().username;
    const acts = (await store.triage.listAudit({ limit: 100 })).entries.map((e) => [e.action, e.actor, e.actorName, e.role, e.target]);
    await store.close();
    expect(acts).toEqual([
      ['enroll-secret-create', `cli:${user}`, user, 'cli', `enroll-secret:${id}`],
      ['enroll-secret-revoke', `cli:${user}`, user, 'cli', `enroll-secret:${id}`],
      ['token-create', `cli:${user}`, user, 'cli', `token:${tokenId}`],
      ['token-revoke', `cli:${user}`, user, 'cli', `token:${tokenId}`],
    ]);
  });
});

describe('9: health and headers', () => {
  it('sets nosniff and a strict CSP on every response, errors and refusals included', async () => {
    for (const res of [await fetch(`${server.url}/healthz`), await fetch(`${server.url}/nope`), await fetch(`${server.url}/api/v1/hosts`)]) {
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    }
  });

  it('says not ready while the ingest worker is dead, restarts it, and stores reports again', async () => {
    const s = await start();
    (s as unknown as { ingest: { kill(): Promise<void> } }).ingest.kill();
    const down = await fetch(`${s.url}/healthz`);
    expect(down.status).toBe(503);
    expect(await down.json()).toMatchObject({ ok: false });
    // It comes back by itself, and a report is stored again.
    expect(await readyWithin(s, 10_000)).toBe(200);
    await stillServing(s);
    await s.close();
  });

  it('says not ready while the database cannot be written', async () => {
    const db = path.join(dir, 'locked.db');
    const s = await start({}, db);
    // Ready first (the writer thread has started), then another process takes the write lock.
    expect(await readyWithin(s, 10_000)).toBe(200);
    const other = new Database(db);
    other.exec('BEGIN EXCLUSIVE');
    const res = await fetch(`${s.url}/healthz`);
    expect(res.status).toBe(503);
    expect(JSON.stringify(await res.json())).toContain('database');
    other.exec('ROLLBACK');
    other.close();
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    await s.close();
  });

  it('pages /api/v1/alerts with limit and cursor', async () => {
    const s = await start();
    const token = await s.store.createApiToken('admin', new Date());
    expect((await callApi(s.url, 'POST', '/api/v1/sinks', token, { type: 'webhook', id: 'page', url: receiver.url('/page'), secret: 's'.repeat(32) })).status).toBe(201);
    for (let i = 0; i < 3; i++) {
      const { agentId, c } = await agent(`paged-${i}`, s);
      c.ws.send(reportFrame(agentId, 1, [{ kind: 'file-added', severity: 'critical', path: `/usr/bin/x${i}` }]));
      await c.next((f) => f.type === 'ack');
      c.ws.close();
    }
    const first = await callApi(s.url, 'GET', '/api/v1/alerts?limit=2', token);
    expect(first.json.deliveries).toHaveLength(2);
    expect(typeof first.json.next).toBe('string');
    const second = await callApi(s.url, 'GET', `/api/v1/alerts?limit=2&cursor=${encodeURIComponent(first.json.next)}`, token);
    expect(second.json.deliveries).toHaveLength(1);
    expect(second.json.next).toBeNull();
    const ids = [...first.json.deliveries, ...second.json.deliveries].map((d: { id: string }) => d.id);
    expect(new Set(ids).size).toBe(3);
    await s.close();
  });
});

void ({} as ServerFrame);
