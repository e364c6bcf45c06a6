// What reaches the on-call engineer, every leg real: a server on loopback (its SQLite file,
// ingest thread, delivery loop), the agent daemon watching a copy of a debootstrap tree, and a
// webhook receiver on loopback. A throttled host still pages a critical change within seconds,
// a held alert leaves when its window opens with no further report, a sink added after the
// drift gets no resolve for it, and a real `apt-get install` pages once, with its command.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { manifestFromObservation } from '../agent/manifest/build.js';
import { observe } from '../agent/fingerprint/observe.js';
import { startDaemon } from '../agent/daemon/daemon.js';
import type { Daemon } from '../agent/daemon/daemon.js';
import { createOutbox } from '../agent/deliver/outbox.js';
import { openRoot } from '../agent/root.js';
import { scanRoot } from '../agent/diff/scan.js';
import { openStateDb } from '../agent/state-db.js';
import { createTransport } from '../agent/deliver/transport.js';
import type { HostDetail, HostFinding } from '../shared/api.js';
import { defaultPolicy } from '../shared/policy.js';
import { DEFAULT_ALERT_POLICY } from '../server/alerts/policy.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { startReceiver } from './helpers/http-receiver.js';
import type { Receiver } from './helpers/http-receiver.js';
import { copyTree, ensureMinbase, ensureWithLanguages } from './helpers/debian-root.js';
import { apiGet, waitFor } from './helpers/processes.js';

const SECRET = 'end-to-end-webhook-secret-0123';
const WINDOW_MS = 8_000;

interface Env {
  server: RunningServer;
  receiver: Receiver;
  tree: { dir: string; remove: () => void };
  work: string;
  admin: string;
  auditor: string;
  hostId: string;
  daemon: Daemon;
  lines: string[];
  reports: () => Promise<number>;
  close: () => Promise<void>;
}

async function start(name: string, throttle: { max: number; windowMs: number }, watch?: { debounceMs: number; maxWaitMs: number }): Promise<Env> {
  const work = mkdtempSync(path.join(tmpdir(), `quicksand-${name}-`));
  const server = await startServer({ db: path.join(work, 'server.db'), port: 0, host: '127.0.0.1', deliveryIntervalMs: 50, alertPolicy: { ...DEFAULT_ALERT_POLICY, throttle } });
  const receiver = await startReceiver();
  const tree = copyTree(ensureMinbase());
  const admin = await server.store.createApiToken('admin', new Date());
  const auditor = await server.store.createApiToken('auditor', new Date());
  const config = await enrollAgent(server.url, await server.store.createEnrollSecret(new Date()), name);
  const db = openStateDb(path.join(work, 'agent-state'));
  const outbox = createOutbox(db);
  const root = await openRoot(tree.dir);
  const manifest = manifestFromObservation(await observe(root, defaultPolicy()), defaultPolicy(), { name: 'debian-minbase', version: '1' }, new Date());
  const transport = createTransport({ config, outbox, host: { hostname: name }, image: { name: manifest.image.name, version: manifest.image.version }, backoff: { firstMaxMs: 100, baseMs: 200, capMs: 1000 } });
  const lines: string[] = [];
  const daemon = startDaemon({ root, manifest, outbox, transport, hostId: config.agentId, scan: (r, m) => scanRoot(r, m, { hostname: name }), log: (l) => lines.push(l), ...(watch === undefined ? {} : { watch }) });
  const reports = async (): Promise<number> => (await apiGet<HostDetail>(`${server.url}/api/v1/hosts/${config.agentId}`, auditor)).reports;
  await waitFor('the start-up report', async () => (await reports()) >= 1, 60_000);
  return {
    server,
    receiver,
    tree,
    work,
    admin,
    auditor,
    hostId: config.agentId,
    daemon,
    lines,
    reports,
    close: async () => {
      await daemon.stop();
      db.close();
      await server.close();
      await receiver.close();
      tree.remove();
      rmSync(work, { recursive: true, force: true });
    },
  };
}

async function addSink(env: Env, id: string): Promise<void> {
  const res = await fetch(`${env.server.url}/api/v1/sinks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'webhook', id, url: env.receiver.url(`/${id}`), secret: SECRET }),
  });
  expect(res.status).toBe(201);
}

interface Received {
  sink: string;
  at: number;
  action: string;
  findings: Array<{ kind: string; name?: string; path?: string; severity: string }>;
}
const received = (env: Env): Received[] =>
  env.receiver.requests.map((r, i) => {
    const body = JSON.parse(r.body.toString('utf8'));
    return { sink: r.path.slice(1), at: arrivals.get(env)![i] ?? Date.now(), action: body.alert.action, findings: body.alert.findings };
  });
// When each request reached the receiver, stamped by a poller (the receiver keeps no times).
const arrivals = new Map<Env, number[]>();
function stampArrivals(env: Env): () => void {
  const stamps: number[] = [];
  arrivals.set(env, stamps);
  const t = setInterval(() => {
    while (stamps.length < env.receiver.requests.length) stamps.push(Date.now());
  }, 5);
  return () => clearInterval(t);
}
const paths = (r: Received): string[] => r.findings.map((f) => f.path ?? f.name ?? '');

describe('a throttled host', () => {
  let env: Env;
  let stop: () => void;
  beforeAll(async () => {
    env = await start('throttled', { max: 1, windowMs: WINDOW_MS });
    stop = stampArrivals(env);
  }, 120_000);
  afterAll(async () => {
    stop?.();
    await env?.close();
  });

  it('pages a critical change within seconds, lets the held alert out when its window opens, and resolves only where it paged', async () => {
    await addSink(env, 'oncall');
    const t0 = Date.now();
    writeFileSync(path.join(env.tree.dir, 'usr/local/bin/first'), '#!/bin/sh\n', { mode: 0o755 });
    await waitFor('the first page', () => received(env).length >= 1, 20_000, 10);
    expect(paths(received(env)[0]!)).toEqual(['/usr/local/bin/first']);
    const firstAt = received(env)[0]!.at;

    // The window is used up: the next change is held.
    writeFileSync(path.join(env.tree.dir, 'usr/local/bin/second'), '#!/bin/sh\n', { mode: 0o755 });
    const held = await waitFor('the second change held', async () => {
      const { held } = await apiGet<{ held: Array<{ until: string; findings: Array<{ path: string }> }> }>(`${env.server.url}/api/v1/alerts?state=held`, env.auditor);
      return held.length === 1 && held[0]!.findings.some((f) => f.path === '/usr/local/bin/second') && held[0]!;
    }, 20_000, 20);
    expect(Date.parse(held.until)).toBeGreaterThan(Date.now());

    // A setuid bit on a system binary: critical, it pages at once all the same.
    const changedAt = Date.now();
    chmodSync(path.join(env.tree.dir, 'usr/bin/env'), 0o4755);
    const critical = await waitFor('the critical page', () => received(env).find((r) => r.findings.some((f) => f.severity === 'critical')), 20_000, 5);
    const latency = critical.at - changedAt;
    // The figure the issue asks for: a critical change to its delivery with the throttle used up.
    console.log(`critical change -> delivery with the throttle exhausted: ${latency} ms (watch debounce 200 ms, delivery loop every 50 ms)`);
    expect(paths(critical)).toEqual(['/usr/bin/env']);
    expect(critical.at).toBeLessThan(Date.parse(held.until));

    // No further report: the held alert leaves when the window opens.
    await new Promise((r) => setTimeout(r, 1500)); // the reports of the chmod have settled
    const reportsBefore = await env.reports();
    const second = await waitFor('the held alert', () => received(env).find((r) => paths(r).includes('/usr/local/bin/second')), WINDOW_MS + 10_000, 20);
    expect(second.at).toBeGreaterThanOrEqual(firstAt + WINDOW_MS - 500);
    expect(second.at - (firstAt + WINDOW_MS)).toBeLessThan(1500);
    expect(await env.reports()).toBe(reportsBefore);
    expect(received(env).map((r) => [r.sink, r.action])).toEqual([
      ['oncall', 'trigger'],
      ['oncall', 'trigger'],
      ['oncall', 'trigger'],
    ]);

    // A sink added now never saw these incidents: the host going back to cattle resolves them at oncall only.
    await addSink(env, 'late');
    unlinkSync(path.join(env.tree.dir, 'usr/local/bin/first'));
    unlinkSync(path.join(env.tree.dir, 'usr/local/bin/second'));
    chmodSync(path.join(env.tree.dir, 'usr/bin/env'), 0o755);
    await waitFor('the host cattle again', async () => (await apiGet<HostDetail>(`${env.server.url}/api/v1/hosts/${env.hostId}`, env.auditor)).status === 'cattle', 20_000);
    await waitFor('the resolves', () => received(env).filter((r) => r.action === 'resolve').length >= 3, 10_000, 20);
    await new Promise((r) => setTimeout(r, 300));
    const resolves = received(env).filter((r) => r.action === 'resolve');
    expect(resolves.map((r) => r.sink)).toEqual(['oncall', 'oncall', 'oncall']);
    expect(received(env).some((r) => r.sink === 'late')).toBe(false);
    expect(Date.now() - t0).toBeLessThan(90_000);
  }, 120_000);
});

describe('a real apt-get install under the running daemon', () => {
  let env: Env;
  beforeAll(async () => {
    // Short batches: event reports go out while dpkg is still writing, as on a host under load.
    env = await start('apt-host', { max: 3, windowMs: 15 * 60_000 }, { debounceMs: 20, maxWaitMs: 150 });
  }, 120_000);
  afterAll(async () => {
    await env?.close();
  });

  it('pages once, with the package and the apt command, and opens no transient finding', async () => {
    await addSink(env, 'oncall');
    // netcat-openbsd and its dependency from the languages tree's apt cache: apt installs them offline.
    const archives = path.join(ensureWithLanguages(), 'var/cache/apt/archives');
    for (const n of readdirSync(archives).filter((n) => /^(libbsd0|libmd0|netcat-openbsd)_.*\.deb$/.test(n))) copyFileSync(path.join(archives, n), path.join(env.tree.dir, 'var/cache/apt/archives', n));
    // Asynchronously: the daemon runs in this process and must see the install as it happens.
    await promisify(execFile)('chroot', [env.tree.dir, 'apt-get', 'install', '-y', '-q', '--no-download', '--no-install-recommends', 'netcat-openbsd'], {
      timeout: 120_000,
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive', LANG: 'C' },
    });
    const hostUrl = `${env.server.url}/api/v1/hosts/${env.hostId}`;
    await waitFor('the install on the server', async () => {
      const { findings } = await apiGet<{ findings: HostFinding[] }>(`${hostUrl}/findings`, env.auditor);
      return findings.some((f) => f.kind === 'package-added' && f.name === 'netcat-openbsd');
    }, 60_000);
    await waitFor('the page', () => env.receiver.requests.length >= 1, 10_000, 20);
    await new Promise((r) => setTimeout(r, 3000)); // anything later would have come by now

    const bodies = env.receiver.requests.map((r) => JSON.parse(r.body.toString('utf8')));
    if (bodies.length !== 1 || bodies[0].alert.findings.some((f: { kind: string }) => f.kind === 'file-added')) console.log(env.lines.join('\n'));
    expect(bodies.map((b) => [b.alert.action, b.alert.findings.map((f: { kind: string; name?: string; path?: string }) => `${f.kind} ${f.name ?? f.path}`).sort()])).toEqual([['trigger', ['package-added libbsd0', 'package-added netcat-openbsd']]]);
    // No file finding was ever opened on its own: every file is under its package, whose finding
    // names the apt command. What else is there is ldconfig's trigger rewriting its cache.
    const { findings } = await apiGet<{ findings: HostFinding[] }>(`${hostUrl}/findings?state=all`, env.auditor);
    expect(findings.filter((f) => f.kind === 'file-added')).toEqual([]);
    expect(findings.map((f) => `${f.kind} ${f.name ?? f.path}`).sort()).toEqual(['file-modified /etc/ld.so.cache', 'package-added libbsd0', 'package-added netcat-openbsd']);
    for (const f of findings.filter((f) => f.kind === 'package-added')) {
      expect(f.changeSet).toMatchObject({ tool: 'apt', command: expect.stringContaining('apt-get install -y -q --no-download --no-install-recommends netcat-openbsd') });
    }
    // Whether an event report came while apt still held its lock depends on the machine's speed;
    // when one did, it was held and the full scan after the end reported the batch.
    if (env.lines.some((l) => /package transaction running \(\/var\/lib\/dpkg\/lock(-frontend)? held by pid \d+\)/.test(l))) {
      expect(env.lines.some((l) => /package transaction ended after [\d.]+ s: one full scan reports it/.test(l))).toBe(true);
    }
  }, 180_000);
});
