// Realtime drift to an on-call alert, end to end and every leg real: the agent daemon watching a
// copy of a debootstrap tree, its outbox, the loopback WebSocket, the server's SQLite file, the
// rules and alert policy inside ingest, the durable queue, the delivery loop and a webhook
// receiver on loopback.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { manifestFromObservation } from '../agent/manifest/build.js';
import { startDaemon } from '../agent/daemon/daemon.js';
import type { Daemon } from '../agent/daemon/daemon.js';
import { observe } from '../agent/fingerprint/observe.js';
import { createOutbox } from '../agent/deliver/outbox.js';
import { openRoot } from '../agent/root.js';
import { scanRoot } from '../agent/diff/scan.js';
import { openStateDb } from '../agent/state-db.js';
import { createTransport } from '../agent/deliver/transport.js';
import type { HostDetail, HostFinding } from '../shared/api.js';
import { defaultPolicy } from '../shared/policy.js';
import type { Manifest } from '../shared/manifest.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { verifySignature } from '../server/alerts/webhook.js';
import { startReceiver } from './helpers/http-receiver.js';
import type { Receiver } from './helpers/http-receiver.js';
import { copyTree, ensureMinbase, ensureWithLanguages, withPackagesPath } from './helpers/debian-root.js';
import { apiGet, waitFor } from './helpers/processes.js';
import { makeTinyRoot } from './helpers/tiny-root.js';
import type { TinyRoot } from './helpers/tiny-root.js';
import { readManifestFile } from '../agent/manifest/io.js';

const SECRET = 'end-to-end-webhook-secret-0123';

interface Setup {
  server: RunningServer;
  work: string;
  admin: string;
  auditor: string;
  close: () => Promise<void>;
}

async function setUp(name: string, over: Partial<Parameters<typeof startServer>[0]> = {}): Promise<Setup> {
  const work = mkdtempSync(path.join(tmpdir(), `quicksand-${name}-`));
  const server = await startServer({ db: path.join(work, 'server.db'), port: 0, host: '127.0.0.1', deliveryIntervalMs: 50, ...over });
  const admin = server.store.createApiToken('admin', new Date());
  const auditor = server.store.createApiToken('auditor', new Date());
  return {
    server,
    work,
    admin,
    auditor,
    close: async () => {
      await server.close();
      rmSync(work, { recursive: true, force: true });
    },
  };
}

async function api(s: Setup, method: string, route: string, token: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${s.server.url}${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: await res.json() };
}

/** A real `dpkg -i` in the chroot of .debs a cached tree's apt already downloaded (in this order). */
function dpkgInstallFromCache(root: string, archives: string, patterns: RegExp[]): void {
  const names = readdirSync(archives);
  const debs = patterns.flatMap((re) => names.filter((n) => re.test(n)));
  expect(debs.length).toBeGreaterThanOrEqual(patterns.length);
  for (const n of debs) copyFileSync(path.join(archives, n), path.join(root, 'var/cache/apt/archives', n));
  execFileSync('chroot', [root, 'dpkg', '-i', ...debs.map((n) => `/var/cache/apt/archives/${n}`)], {
    stdio: 'ignore',
    timeout: 60_000,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive', LANG: 'C' },
  });
}

/** Waits for the package on the server, then for every event batch of the install to arrive. */
async function waitForInstallToSettle(s: Setup, hostUrl: string, name: string, outboxDepth: () => number): Promise<void> {
  await waitFor('the install on the server', async () => {
    const { findings } = await apiGet<{ findings: HostFinding[] }>(`${hostUrl}/findings`, s.auditor);
    return findings.some((f) => f.kind === 'package-added' && f.name === name);
  }, 60_000);
  // The report count stops moving and the outbox is empty.
  let before = -1;
  await waitFor('the reports to settle', async () => {
    const n = (await apiGet<HostDetail>(hostUrl, s.auditor)).reports;
    const settled = n === before && outboxDepth() === 0;
    before = n;
    return settled;
  }, 60_000, 2500);
}

async function manifestOf(dir: string): Promise<Manifest> {
  const root = await openRoot(dir);
  return manifestFromObservation(await observe(root, defaultPolicy()), defaultPolicy(), { name: 'debian-minbase', version: '1' }, new Date());
}

/** A server, a webhook receiver on loopback and a private copy of the minbase tree, per suite. */
function useServerReceiverTree(name: string, over: Partial<Parameters<typeof startServer>[0]> = {}): { s: Setup; receiver: Receiver; tree: { dir: string; remove: () => void } } {
  const env = {} as { s: Setup; receiver: Receiver; tree: { dir: string; remove: () => void } };
  beforeAll(async () => {
    env.s = await setUp(name, over);
    env.receiver = await startReceiver();
    env.tree = copyTree(ensureMinbase());
  });
  afterAll(async () => {
    await env.s?.close();
    await env.receiver?.close();
    env.tree?.remove();
  });
  return env;
}

describe('realtime drift reaches the on-call engineer once', () => {
  const env = useServerReceiverTree('realtime');

  it('turns a dropped binary into a stored finding and exactly one signed webhook, and a dpkg run of two packages into one more', async () => {
    const { s, receiver, tree } = env;
    const sink = await api(s, 'POST', '/api/v1/sinks', s.admin, { type: 'webhook', id: 'oncall', url: receiver.url('/hook'), secret: SECRET });
    expect(sink.status).toBe(201);
    expect(sink.json.sink.secret).toBe('(set)');

    const secret = s.server.store.createEnrollSecret(new Date());
    const config = await enrollAgent(s.server.url, secret, 'golden-1');
    const state = path.join(s.work, 'agent-state');
    const db = openStateDb(state);
    const outbox = createOutbox(db);
    const root = await openRoot(tree.dir);
    const manifest = await manifestOf(tree.dir);
    const transport = createTransport({ config, outbox, host: { hostname: 'golden-1' }, image: { name: manifest.image.name, version: manifest.image.version }, backoff: { firstMaxMs: 100, baseMs: 200, capMs: 1000 } });
    const lines: string[] = [];
    let daemon: Daemon | undefined;
    try {
      daemon = startDaemon({
        root,
        manifest,
        outbox,
        transport,
        hostId: config.agentId,
        scan: (r, m) => scanRoot(r, m, { hostname: 'golden-1' }),
        watch: { debounceMs: 1000, maxWaitMs: 30_000 },
        log: (line) => lines.push(line),
      });
      const hostUrl = `${s.server.url}/api/v1/hosts/${config.agentId}`;
      // The start-up full scan: clean, and it says the watch is on.
      const first = await waitFor('the start-up report', async () => {
        const h = await apiGet<HostDetail>(hostUrl, s.auditor);
        return h.reports >= 1 && h;
      });
      expect(first.status).toBe('cattle');
      expect(first.watch).toEqual({ state: 'ok', reason: null });
      expect(daemon.schedule).toMatch(/^\d+ \d+ \* \* \* \*$/);

      writeFileSync(path.join(tree.dir, 'usr/local/sbin/implant'), '#!/bin/sh\n', { mode: 0o755 });
      await waitFor('the finding on the server', async () => {
        const { findings } = await apiGet<{ findings: HostFinding[] }>(`${hostUrl}/findings`, s.auditor);
        return findings.some((f) => f.path === '/usr/local/sbin/implant');
      });
      expect((await apiGet<HostDetail>(hostUrl, s.auditor)).status).toBe('pet');
      await waitFor('the webhook', () => receiver.requests.length >= 1, 10_000, 20);

      dpkgInstallFromCache(tree.dir, path.join(withPackagesPath(), 'var/cache/apt/archives'), [/^libbsd0_.*\.deb$/, /^netcat-openbsd_.*\.deb$/]);
      await waitForInstallToSettle(s, hostUrl, 'netcat-openbsd', () => outbox.depth());
      await s.server.deliveries.tick();
    } finally {
      await daemon?.stop();
      db.close();
    }

    const { findings } = await apiGet<{ findings: HostFinding[] }>(`${s.server.url}/api/v1/hosts/${config.agentId}/findings`, s.auditor);
    const files = findings.filter((f) => f.kind === 'package-added').reduce((n, f) => n + ((f.detail as { changes?: unknown[] }).changes?.length ?? 0), 0);
    expect(files).toBeGreaterThan(10);
    const bodies = receiver.requests.map((r) => {
      expect(verifySignature(SECRET, r.body, r.headers['x-quicksand-signature'] as string)).toBe(true);
      return JSON.parse(r.body.toString('utf8'));
    });
    expect(bodies.map((b) => b.alert.findings.map((f: { kind: string; name?: string; path?: string }) => `${f.kind} ${f.name ?? f.path}`)).sort()).toEqual(
      [['file-added /usr/local/sbin/implant'], ['package-added libbsd0', 'package-added netcat-openbsd']].sort(),
    );
    const alerts = await api(s, 'GET', `/api/v1/alerts?host=${config.agentId}`, s.auditor);
    expect(alerts.json.deliveries.map((d: { state: string }) => d.state)).toEqual(['delivered', 'delivered']);
    expect(alerts.json.deliveries.every((d: { attemptLog: unknown[] }) => d.attemptLog.length === 1)).toBe(true);
  });
});

describe('a failing sink', () => {
  const env = useServerReceiverTree('failing-sink', { alertRetry: { baseMs: 50, factor: 1, maxDelayMs: 50, maxAttempts: 5 } });

  it('is retried through 500s and a timeout, every attempt recorded, while the server keeps ingesting', async () => {
    const { s, receiver, tree } = env;
    // Timeouts are the sink's own setting; the receiver answers 500, then never, then 200.
    receiver.script.push(500, 'hang');
    expect((await api(s, 'POST', '/api/v1/sinks', s.admin, { type: 'webhook', id: 'flaky', url: receiver.url('/hook'), secret: SECRET, timeoutMs: 3000 })).status).toBe(201);
    const config = await enrollAgent(s.server.url, s.server.store.createEnrollSecret(new Date()), 'golden-2');
    const db = openStateDb(path.join(s.work, 'agent-state'));
    const outbox = createOutbox(db);
    const root = await openRoot(tree.dir);
    const manifest = await manifestOf(tree.dir);
    const acked = new Set<number>();
    const transport = createTransport({ config, outbox, host: { hostname: 'golden-2' }, image: { name: manifest.image.name, version: manifest.image.version }, onAck: (seq) => acked.add(seq) });
    transport.start();
    try {
      writeFileSync(path.join(tree.dir, 'usr/local/bin/one'), 'one\n', { mode: 0o755 });
      const first = outbox.enqueue(await scanRoot(root, manifest, { hostname: 'golden-2' }), 'full', new Date());
      transport.notify();
      await waitFor('the 500 and the hanging attempt', () => receiver.requests.length >= 2, 15_000, 20);

      // The sink hangs; ingest does not wait for it.
      writeFileSync(path.join(tree.dir, 'usr/local/bin/two'), 'two\n', { mode: 0o755 });
      const second = outbox.enqueue(await scanRoot(root, manifest, { hostname: 'golden-2' }), 'full', new Date());
      transport.notify();
      await waitFor('the second report acked', () => acked.has(second.seq) && acked.has(first.seq), 15_000, 20);
      const pending = await api(s, 'GET', `/api/v1/alerts?host=${config.agentId}`, s.auditor);
      expect(pending.json.deliveries[0].state).not.toBe('delivered');

      await waitFor('both delivered', async () => {
        const { json } = await api(s, 'GET', `/api/v1/alerts?host=${config.agentId}`, s.auditor);
        return json.deliveries.length === 2 && json.deliveries.every((d: { state: string }) => d.state === 'delivered');
      }, 20_000, 50);
    } finally {
      await transport.stop();
      db.close();
    }
    const { json } = await api(s, 'GET', `/api/v1/alerts?host=${config.agentId}`, s.auditor);
    const log = json.deliveries[0].attemptLog.map((a: { status: number | null; ok: boolean; result: string; error: string | null }) => [a.status, a.ok, a.result]);
    expect(log).toEqual([
      [500, false, 'retry'],
      [null, false, 'retry'],
      [200, true, 'delivered'],
    ]);
    expect(json.deliveries[0].attemptLog[1].error).toMatch(/no answer within 3000 ms/);
  });
});

describe('watch exhaustion', () => {
  let s: Setup;
  let tiny: TinyRoot;
  beforeAll(async () => {
    s = await setUp('degraded');
    tiny = makeTinyRoot();
  });
  afterAll(async () => {
    await s?.close();
    tiny?.remove();
  });

  it('shows the degraded watch on the server, and the scheduled full scan still finds the change', async () => {
    const config = await enrollAgent(s.server.url, s.server.store.createEnrollSecret(new Date()), 'tiny-host');
    const db = openStateDb(path.join(s.work, 'agent-state'));
    const outbox = createOutbox(db);
    const manifest = await readManifestFile(tiny.manifest);
    const transport = createTransport({ config, outbox, host: { hostname: 'tiny-host' }, image: { name: manifest.image.name, version: manifest.image.version } });
    const lines: string[] = [];
    const daemon = startDaemon({
      root: await openRoot(tiny.root),
      manifest,
      outbox,
      transport,
      hostId: config.agentId,
      scan: (r, m) => scanRoot(r, m, { hostname: 'tiny-host' }),
      // One folder is all the kernel would give: the watcher gives up and says why.
      watch: { maxWatchedDirs: 1 },
      schedule: '*/2 * * * * *',
      log: (line) => lines.push(line),
    });
    try {
      const hostUrl = `${s.server.url}/api/v1/hosts/${config.agentId}`;
      const degraded = await waitFor('the degraded state on the server', async () => {
        const h = await apiGet<HostDetail>(hostUrl, s.auditor);
        return h.watch?.state === 'degraded' && h;
      });
      expect(degraded.watch!.reason).toMatch(/\S/);
      const { hosts } = await apiGet<{ hosts: HostDetail[] }>(`${s.server.url}/api/v1/hosts`, s.auditor);
      expect(hosts[0]!.watch).toEqual(degraded.watch);
      expect(lines.some((l) => l.includes('realtime watch degraded'))).toBe(true);

      writeFileSync(path.join(tiny.root, 'usr/bin/dropped'), '#!/bin/sh\n', { mode: 0o755 });
      await waitFor('the scheduled scan to find it', async () => {
        const { findings } = await apiGet<{ findings: HostFinding[] }>(`${hostUrl}/findings`, s.auditor);
        return findings.some((f) => f.path === '/usr/bin/dropped');
      }, 20_000);
      expect((await apiGet<HostDetail>(hostUrl, s.auditor)).status).toBe('pet');
    } finally {
      await daemon.stop();
      db.close();
    }
  });
});

describe('a package install of over a thousand files', () => {
  const env = useServerReceiverTree('perl-modules');

  it('pages once for perl-modules-5.36 (1,400 paths through the watcher, outbox, stream and ingest)', async () => {
    const { s, receiver, tree } = env;
    expect((await api(s, 'POST', '/api/v1/sinks', s.admin, { type: 'webhook', id: 'oncall', url: receiver.url('/hook'), secret: SECRET })).status).toBe(201);
    const config = await enrollAgent(s.server.url, s.server.store.createEnrollSecret(new Date()), 'golden-3');
    const db = openStateDb(path.join(s.work, 'agent-state'));
    const outbox = createOutbox(db);
    const manifest = await manifestOf(tree.dir);
    const transport = createTransport({ config, outbox, host: { hostname: 'golden-3' }, image: { name: manifest.image.name, version: manifest.image.version } });
    const daemon = startDaemon({
      root: await openRoot(tree.dir),
      manifest,
      outbox,
      transport,
      hostId: config.agentId,
      scan: (r, m) => scanRoot(r, m, { hostname: 'golden-3' }),
      watch: { debounceMs: 1000, maxWaitMs: 30_000 },
      log: () => {},
    });
    const hostUrl = `${s.server.url}/api/v1/hosts/${config.agentId}`;
    try {
      await waitFor('the start-up report', async () => (await apiGet<HostDetail>(hostUrl, s.auditor)).reports >= 1);
      dpkgInstallFromCache(tree.dir, path.join(ensureWithLanguages(), 'var/cache/apt/archives'), [/^perl-modules-5\.36_.*\.deb$/]);
      await waitForInstallToSettle(s, hostUrl, 'perl-modules-5.36', () => outbox.depth());
      await s.server.deliveries.tick();
    } finally {
      await daemon.stop();
      db.close();
    }
    const bodies = receiver.requests.map((r) => JSON.parse(r.body.toString('utf8')));
    expect(bodies.map((b) => b.alert.findings.map((f: { kind: string; name?: string }) => `${f.kind} ${f.name}`))).toEqual([['package-added perl-modules-5.36']]);
    expect(bodies[0].alert.counts.files).toBeGreaterThan(1000);
  });
});
