// bench:console — server time of the console's two heaviest pages on a real SQLite file (or PostgreSQL): the
// fleet page with 10,000 hosts (half of them pets, over 40 image versions), and one host's page
// with 5,000 open findings. Each page is asked for several times through the console's Hono app
// (no socket: the server's own time, rendering included); the median and the slowest are shown.
// Target (issue 14): each median ≤ 150 ms on this machine.
// `-- --db postgres://USER@HOST:PORT/DB`: the same on a fresh database made on that PostgreSQL
// server (dropped at the end).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SESSION_COOKIE } from '../shared/console.js';
import type { Finding } from '../shared/report.js';
import { createSqliteStore } from '../server/store/sqlite-store.js';
import { createPostgresStore } from '../server/store/postgres/store.js';
import type { IngestItem, Store } from '../server/store/types.js';
import { createConsole } from '../server/web/console.js';
import { reportFrame } from '../test/helpers/store-backends.js';
import { freshPostgres, lpad, median, pad } from './measure.js';

const HOSTS = Number(process.env.QS_BENCH_HOSTS ?? 10_000);
const FINDINGS = Number(process.env.QS_BENCH_FINDINGS ?? 5_000);
const RUNS = 9;

const argv = process.argv.slice(2);
const dbAt = argv.indexOf('--db');
const pgUrl = dbAt >= 0 ? argv[dbAt + 1] : undefined;
const dir = mkdtempSync(path.join(tmpdir(), 'quicksand-bench-console-'));
const pgDb = pgUrl === undefined ? undefined : await freshPostgres(pgUrl);
const store: Store = pgDb === undefined ? createSqliteStore(path.join(dir, 'server.db')) : await createPostgresStore(pgDb.url);
console.log(`backend: ${pgDb === undefined ? 'SQLite' : 'PostgreSQL'}`);
const now = new Date();
const secret = await store.createEnrollSecret(now);
let t = Date.now();
for (let i = 0; i < HOSTS; i += 500) {
  const batch: IngestItem[] = [];
  for (let j = i; j < Math.min(HOSTS, i + 500); j++) {
    const id = (await store.enrollAgent(secret, `host-${j}`, now))!.agentId;
    const findings: Finding[] = j % 2 === 0 ? [{ kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: `tool-${j % 7}`, after: '1.0' }] : [];
    const frame = reportFrame(id, 1, 'full', findings, now);
    frame.report.image = { name: `image-${j % 4}`, version: String(j % 10) };
    frame.report.host.hostname = `host-${j}`;
    batch.push({ type: 'report', agentId: id, frame, receivedAt: now });
  }
  await store.ingestBatch(batch);
}
const big = (await store.enrollAgent(secret, 'big-host', now))!.agentId;
const many: Finding[] = Array.from({ length: FINDINGS }, (_, k) => ({ kind: 'file-added', severity: 'medium', path: `/etc/bench/${k}.conf` }));
await store.ingestBatch([{ type: 'report', agentId: big, frame: reportFrame(big, 1, 'full', many, now), receivedAt: now }]);
console.log(`fixture: ${HOSTS} hosts and a host with ${FINDINGS} findings in ${((Date.now() - t) / 1000).toFixed(1)} s (machine shared with other work: figures are indicative)`);

await store.createUser({ name: 'bench', role: 'analyst', passwordHash: 'not-used-here', now });
const { token } = await store.createSession({ user: 'bench', now, idleMs: 3_600_000, absoluteMs: 3_600_000 });
const app = createConsole({ store, clock: () => new Date() });
const headers = { cookie: `${SESSION_COOKIE}=${token}` };

async function measure(label: string, url: string): Promise<void> {
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < RUNS + 1; i++) {
    t = performance.now();
    const res = await app.request(url, { headers });
    const body = await res.text();
    const ms = performance.now() - t;
    if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
    bytes = body.length;
    if (i > 0) times.push(ms); // the first warms the statements
  }
  console.log(`${pad(label, 44)} median ${lpad(median(times).toFixed(1), 7)} ms   max ${lpad(Math.max(...times).toFixed(1), 7)} ms   ${lpad(String(Math.round(bytes / 1024)), 5)} KiB   (target ≤ 150 ms)`);
}

await measure(`fleet page, ${HOSTS} hosts`, '/');
await measure(`fleet page, ${HOSTS} hosts, status=pet page 50`, '/?status=pet&page=50');
await measure(`fleet page, severity=high + text filter`, '/?severity=high&q=host-1');
await measure(`fleet CSV, every pet`, '/fleet.csv?status=pet');
await measure(`host page, ${FINDINGS} findings`, `/hosts/${big}`);
await measure(`host page, ${FINDINGS} findings, page 20`, `/hosts/${big}?page=20`);
await store.close();
await pgDb?.drop();
rmSync(dir, { recursive: true, force: true });
