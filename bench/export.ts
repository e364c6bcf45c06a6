// bench:export — 100,000 findings across 1,000 hosts exported as CSV and as PDF by a real server
// over HTTP; the time and the server's peak RSS (VmHWM of a fresh server process per export).
// 10,000 rows (a label on 100 of the hosts) beside 100,000: the CSV's peak must not grow with them.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPORT_SCHEMA, summarize } from '../shared/report.js';
import type { Finding, Report } from '../shared/report.js';
import { createSqliteStore } from '../server/store/sqlite-store.js';
import { startServer } from '../server/server.js';
import { lpad, median, pad } from './measure.js';

const HOSTS = 1000;
const PER_HOST = 100;
const SMALL = 100;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const T0 = new Date('2026-11-02T00:00:00Z');

if (process.argv[2] === 'serve') {
  const server = await startServer({ db: process.argv[3]!, port: 0, host: '127.0.0.1', schedules: false, now: () => new Date('2026-11-03T00:00:00Z') });
  process.stdout.write(`${server.url}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => void server.close().then(() => process.exit(0)));
} else {
  await main();
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(tmpdir(), 'quicksand-bench-export-'));
  const db = path.join(work, 'server.db');
  const store = createSqliteStore(db);
  const started = Date.now();
  const secret = await store.createEnrollSecret(T0);
  for (let h = 0; h < HOSTS; h++) {
    const { agentId } = (await store.enrollAgent(secret, `host-${h}`, T0))!;
    const findings: Finding[] = Array.from({ length: PER_HOST }, (_, i) => ({ kind: 'file-added', severity: 'high', path: `/usr/lib/bench/h${h}/file-${i}` }));
    const report: Report = { schema: REPORT_SCHEMA, image: { name: 'web', version: '42' }, host: { hostname: `host-${h}`, root: '/' }, scannedAt: T0.toISOString(), summary: summarize(findings), stats: { files: 1, packages: 1, bytesHashed: 0, durationMs: 1 }, findings, warnings: [] };
    await store.ingestBatch([{ type: 'report', agentId, frame: { type: 'report', agentId, seq: 1, prevHash: null, hash: 'a'.repeat(64), kind: 'full', report }, receivedAt: T0 }]);
    if (h < SMALL) await store.triage.setLabels({ hostId: agentId, labels: { bench: 'small' }, actor: { id: 'bench', role: 'admin' }, now: T0 });
  }
  const token = await store.createApiToken('auditor', T0, 'bench');
  await store.close();
  console.log(`seeded ${HOSTS} hosts x ${PER_HOST} findings in ${((Date.now() - started) / 1000).toFixed(1)} s; ${RUNS} runs each, a fresh server process per run (the machine is shared: read the ratios)`);

  const rows: string[] = [];
  const results = new Map<string, { ms: number[]; peak: number[]; bytes: number }>();
  for (const format of ['csv', 'pdf'] as const) {
    for (const scope of ['label:bench=small', 'image:web'] as const) {
      const key = `${format} ${scope === 'image:web' ? '100k' : '10k'}`;
      const r = { ms: [] as number[], peak: [] as number[], bytes: 0 };
      for (let i = 0; i < RUNS; i++) {
        const m = await measure(db, token, format, scope);
        r.ms.push(m.ms);
        r.peak.push(m.peakMiB);
        r.bytes = m.bytes;
      }
      results.set(key, r);
      rows.push(`${pad(key, 10)} ${lpad(String(r.bytes), 11)} B ${lpad(median(r.ms).toFixed(0), 7)} ms ${lpad(median(r.peak).toFixed(1), 7)} MiB peak RSS`);
    }
  }
  console.log(`${pad('export', 10)} ${lpad('size', 13)} ${lpad('median', 10)} ${lpad('median', 16)}`);
  for (const row of rows) console.log(row);
  const ratio = (a: string, b: string, what: 'ms' | 'peak'): string => (median(results.get(a)![what]) / median(results.get(b)![what])).toFixed(2);
  console.log(`csv 100k/10k: time x${ratio('csv 100k', 'csv 10k', 'ms')}, peak RSS x${ratio('csv 100k', 'csv 10k', 'peak')} (10x the rows)`);
  console.log(`pdf 100k/10k: time x${ratio('pdf 100k', 'pdf 10k', 'ms')}, peak RSS x${ratio('pdf 100k', 'pdf 10k', 'peak')} (10x the rows)`);
  rmSync(work, { recursive: true, force: true });
}

/** One export from a fresh server process: wall time of the download, its peak RSS after it. */
async function measure(db: string, token: string, format: string, scope: string): Promise<{ ms: number; peakMiB: number; bytes: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', import.meta.filename, 'serve', db], { stdio: ['pipe', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()));
    child.once('exit', (code) => reject(new Error(`the server exited (${code})`)));
  });
  const started = performance.now();
  const res = await fetch(`${url}/api/v1/exports?from=2026-11-01T00:00:00Z&to=2026-11-03T00:00:00Z&scope=${encodeURIComponent(scope)}&format=${format}`, { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`export: ${res.status} ${await res.text()}`);
  let bytes = 0;
  for await (const chunk of res.body!) bytes += (chunk as Uint8Array).length;
  const ms = performance.now() - started;
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]!;
  child.stdin.end();
  await new Promise((r) => child.once('exit', r));
  return { ms, peakMiB: Number(hwm) / 1024, bytes };
}
