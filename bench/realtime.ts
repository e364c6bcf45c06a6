// npm run bench:realtime — how fast a write becomes an event report, and what watching costs
// while nothing happens. Bounded: a fixed number of writes and a fixed idle window; it stops by
// itself.
//
//   write → report   latency of single writes into a watched debootstrap tree (p50/p95/max),
//                    with the default debounce and with a short one (the floor of the work)
//   write → stored   the whole way: the agent daemon (monitor, outbox, transport) streaming to a
//                    real server on loopback, until the finding is committed in its SQLite file
//   burst            200 files written at once: how many reports, how long to the last one
//   idle CPU         process.cpuUsage over a fixed window while watching, nothing changing,
//                    for the debootstrap tree and for this machine's own tracked paths
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defaultPolicy } from '../shared/policy.js';
import { MANIFEST_SCHEMA } from '../shared/manifest.js';
import type { Manifest } from '../shared/manifest.js';
import type { Report } from '../shared/report.js';
import { manifestFromObservation } from '../agent/manifest/build.js';
import { observe } from '../agent/fingerprint/observe.js';
import { openRoot } from '../agent/root.js';
import type { Root } from '../agent/root.js';
import { startWatch } from '../agent/daemon/watch.js';
import type { RealtimeWatch } from '../agent/daemon/watch.js';
import { startDaemon } from '../agent/daemon/daemon.js';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { createOutbox } from '../agent/deliver/outbox.js';
import { scanRoot } from '../agent/diff/scan.js';
import { openStateDb } from '../agent/state-db.js';
import { createTransport } from '../agent/deliver/transport.js';
import { startServer } from '../server/server.js';
import { copyTree, ensureMinbase } from '../test/helpers/debian-root.js';

const WRITES = Number(process.env.BENCH_WRITES ?? 40);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 10_000);

const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const ms = (x: number): string => `${x.toFixed(0)} ms`;

interface Waiter {
  path: string;
  resolve: (r: Report) => void;
}

async function watchWithWaiters(root: Root, manifest: Manifest, debounceMs?: number) {
  const reports: Report[] = [];
  const waiters: Waiter[] = [];
  const watch = startWatch({
    root,
    manifest,
    ...(debounceMs === undefined ? {} : { debounceMs }),
    onReport: (r) => {
      reports.push(r);
      for (const w of [...waiters]) {
        if (r.scope?.paths.includes(w.path) || r.scope?.subtrees.some((s) => w.path.startsWith(`${s}/`))) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(r);
        }
      }
    },
  });
  const reportFor = (p: string, timeoutMs = 10_000): Promise<Report> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no report for ${p} within ${timeoutMs} ms`)), timeoutMs);
      waiters.push({ path: p, resolve: (r) => (clearTimeout(t), resolve(r)) });
    });
  return { watch, reports, reportFor };
}

async function latency(root: Root, manifest: Manifest, label: string, debounceMs?: number): Promise<void> {
  const { watch, reportFor } = await watchWithWaiters(root, manifest, debounceMs);
  await watch.ready;
  const lat: number[] = [];
  const work: number[] = [];
  for (let i = 0; i < WRITES; i++) {
    const inside = `/usr/local/bin/bench-${label}-${i}`;
    const got = reportFor(inside);
    const t = performance.now();
    writeFileSync(root.hostPath(inside), `#!/bin/sh\necho ${i}\n`, { mode: 0o755 });
    const r = await got;
    lat.push(performance.now() - t);
    work.push(r.stats.durationMs);
  }
  await watch.close();
  console.log(
    `write → event report (${label}, ${WRITES} writes): p50 ${ms(percentile(lat, 50))}, p95 ${ms(percentile(lat, 95))}, max ${ms(Math.max(...lat))}; ` +
      `of which batch work p50 ${ms(percentile(work, 50))}, p95 ${ms(percentile(work, 95))}`,
  );
}

/** Write → finding committed on a real server on loopback, through the agent daemon's own path. */
async function serverLeg(root: Root, manifest: Manifest): Promise<void> {
  const work = mkdtempSync(path.join(tmpdir(), 'quicksand-bench-realtime-'));
  const server = await startServer({ db: path.join(work, 'server.db'), port: 0, host: '127.0.0.1' });
  const db = openStateDb(path.join(work, 'agent'));
  try {
    const config = await enrollAgent(server.url, server.store.createEnrollSecret(new Date()), 'bench-host');
    const outbox = createOutbox(db);
    const transport = createTransport({ config, outbox, host: { hostname: 'bench-host' }, image: { name: manifest.image.name, version: manifest.image.version } });
    const daemon = startDaemon({
      root,
      manifest,
      outbox,
      transport,
      hostId: config.agentId,
      scan: (r, m) => scanRoot(r, m, { hostname: 'bench-host' }),
      schedule: '0 0 1 1 *',
      log: () => {},
    });
    const stored = (p: string): boolean => (server.store.listFindings(config.agentId, { state: 'open' }, new Date()) ?? []).some((f) => f.path === p);
    const until = async (what: string, ok: () => boolean, timeoutMs = 10_000): Promise<void> => {
      const end = performance.now() + timeoutMs;
      while (!ok()) {
        if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await daemon.ready;
    await until('the start-up report', () => server.store.listReports(config.agentId).length >= 1, 60_000);
    const lat: number[] = [];
    for (let i = 0; i < WRITES; i++) {
      const inside = `/usr/local/bin/bench-server-${i}`;
      const t = performance.now();
      writeFileSync(root.hostPath(inside), `#!/bin/sh\necho ${i}\n`, { mode: 0o755 });
      await until(`the finding for ${inside}`, () => stored(inside));
      lat.push(performance.now() - t);
    }
    await daemon.stop();
    console.log(`write → finding stored on the server (default debounce, ${WRITES} writes): p50 ${ms(percentile(lat, 50))}, p95 ${ms(percentile(lat, 95))}, max ${ms(Math.max(...lat))}`);
  } finally {
    db.close();
    await server.close();
    rmSync(work, { recursive: true, force: true });
  }
}

async function burst(root: Root, manifest: Manifest): Promise<void> {
  const { watch, reports, reportFor } = await watchWithWaiters(root, manifest);
  await watch.ready;
  const dir = '/usr/local/lib/bench-burst';
  const got = reportFor(`${dir}/f199`);
  const t = performance.now();
  mkdirSync(root.hostPath(dir));
  for (let i = 0; i < 200; i++) writeFileSync(root.hostPath(`${dir}/f${i}`), `data ${i}\n`);
  const r = await got;
  const took = performance.now() - t;
  await new Promise((res) => setTimeout(res, 1000));
  await watch.idle();
  await watch.close();
  console.log(`burst of 200 files: ${reports.length} report(s), ${r.findings.length} findings, last file reported after ${ms(took)}`);
}

/** CPU of this process over the window, in % of one core. */
async function cpuOver(windowMs: number): Promise<{ pct: number; wall: number }> {
  const cpu0 = process.cpuUsage();
  const w0 = performance.now();
  await new Promise((r) => setTimeout(r, windowMs));
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - w0;
  return { pct: ((cpu.user + cpu.system) / 1000 / wall) * 100, wall };
}

/** The same window with nothing watched: what a sleeping Node process costs on this machine. */
async function baseline(): Promise<void> {
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((r) => setTimeout(r, 2000));
  const { pct, wall } = await cpuOver(IDLE_MS);
  console.log(`control, nothing watched: ${pct.toFixed(3)}% of a core over ${(wall / 1000).toFixed(1)} s`);
}

async function idle(root: Root, manifest: Manifest, label: string): Promise<void> {
  const t0 = performance.now();
  let events = 0;
  const watch: RealtimeWatch = startWatch({ root, manifest, onReport: () => void events++ });
  await watch.ready;
  const setup = performance.now() - t0;
  // The window measures the watcher, not V8 still collecting what the crawl and the earlier
  // phases left behind (that decays over tens of seconds): one full collection first, then settle.
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((r) => setTimeout(r, 2000));
  const { pct, wall } = await cpuOver(IDLE_MS);
  const rss = process.memoryUsage().rss / 1024 / 1024;
  console.log(
    `idle while watching ${label}: ${pct.toFixed(3)}% of a core over ${(wall / 1000).toFixed(1)} s (${watch.watchedDirs()} folders watched, ` +
      `set up in ${ms(setup)}, state ${watch.state().state}, ${events} event report(s) during the window, rss ${rss.toFixed(0)} MiB)`,
  );
  await watch.close();
}

async function main(): Promise<void> {
  const gc = typeof (globalThis as { gc?: unknown }).gc === 'function';
  console.log(`bench:realtime — node ${process.version}, ${WRITES} writes per run, ${IDLE_MS / 1000} s idle window${gc ? ' after a forced GC' : ' (run with --expose-gc for a steadier idle figure)'}`);
  const tree = copyTree(ensureMinbase());
  try {
    const root = await openRoot(tree.dir);
    const policy = defaultPolicy();
    const manifest = manifestFromObservation(await observe(root, policy), policy, { name: 'bench', version: '1' }, new Date());
    console.log(`debootstrap minbase copy: ${manifest.files.length} paths, ${manifest.files.filter((f) => f.type === 'dir').length} folders, ${manifest.packages.length} packages`);
    await latency(root, manifest, 'default debounce 200 ms');
    await latency(root, manifest, 'debounce 20 ms', 20);
    await serverLeg(root, manifest);
    await burst(root, manifest);
    await baseline();
    await idle(root, manifest, 'the debootstrap tree');
  } finally {
    tree.remove();
  }
  // This machine's own tracked paths: only the watch is measured, so the manifest needs no files.
  const host = await openRoot('/');
  const hostManifest: Manifest = {
    schema: MANIFEST_SCHEMA,
    image: { name: 'this-host', version: '0', createdAt: new Date().toISOString(), source: 'root' },
    policy: defaultPolicy(),
    packages: [],
    files: [],
  };
  await idle(host, hostManifest, `this machine's ${hostManifest.policy.tracked.join(' ')}`);
}

await main();
process.exit(0);
