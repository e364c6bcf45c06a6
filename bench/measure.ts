// Shared by the benchmarks: run a command under /usr/bin/time -v, take wall time and peak RSS,
// and summarise repeated runs by their median (this machine is shared: medians, not means).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';

export interface Run {
  seconds: number;
  rssMb: number;
  status: number | null;
}

export function timed(cmd: string[], opts: { shell?: boolean; okStatus?: number[]; env?: NodeJS.ProcessEnv } = {}): Run {
  const argv = opts.shell ? ['/usr/bin/time', '-v', 'sh', '-c', cmd.join(' ')] : ['/usr/bin/time', '-v', ...cmd];
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 1024 ** 3, env: opts.env ?? process.env });
  const seconds = (performance.now() - t0) / 1000;
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr ?? '');
  const ok = opts.okStatus ?? [0];
  if (r.status === null || !ok.includes(r.status)) {
    throw new Error(`${cmd.join(' ')} exited with ${r.status}:\n${(r.stderr ?? '').slice(-2000)}`);
  }
  return { seconds, rssMb: rss ? Number(rss[1]) / 1024 : NaN, status: r.status };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Summary {
  label: string;
  seconds: number;
  rssMb: number;
  runs: number[];
}

export function summarise(label: string, runs: Run[]): Summary {
  return { label, seconds: median(runs.map((r) => r.seconds)), rssMb: Math.max(...runs.map((r) => r.rssMb)), runs: runs.map((r) => r.seconds) };
}

/** Single-core sha256 throughput of this process, bytes per second (Node's crypto, like the agent). */
export function sha256Rate(): number {
  const buf = Buffer.alloc(64 * 1024 * 1024, 7);
  const rates: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    createHash('sha256').update(buf).update(buf).digest();
    rates.push((2 * buf.length) / ((performance.now() - t0) / 1000));
  }
  return median(rates);
}

export const cores = availableParallelism();

export function pad(text: string, n: number): string {
  return text.length >= n ? text : text + ' '.repeat(n - text.length);
}

export function lpad(text: string, n: number): string {
  return text.length >= n ? text : ' '.repeat(n - text.length) + text;
}

/** A fresh database on the PostgreSQL server `url` names; dropped by the returned function. */
export async function freshPostgres(url: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `quicksand_bench_${process.pid}`;
  const admin = async (sql: string): Promise<void> => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const u = new URL(url);
  u.pathname = `/${name}`;
  return { url: u.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/** Past this, a file's times are no longer within the stat cache's racy window (it re-reads what changed within 2 s). */
export const RACY_WAIT_MS = 2100;

// The leanest walk Node has, the floor of any walk in JavaScript: names as strings, the type from
// readdir, one lstat per path, nothing kept or printed. A CommonJS program file, run as
// `node FILE TOP...` (bench:floor and bench:scan run the same one).
export const NODE_LEANEST_WALK = `const fs = require('node:fs');
let n = 0;
const walk = (dir) => {
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = dir + '/' + d.name;
    fs.lstatSync(p);
    n++;
    if (d.isDirectory()) walk(p);
  }
};
for (const top of process.argv.slice(2)) { n++; if (fs.lstatSync(top).isDirectory()) walk(top); }
if (n === 0) process.exit(1);`;

// The leanest cold manifest Node has: the same walk, and sha256 of every regular file's bytes,
// one-shot crypto.hash for a file up to 1 MiB (the minbase's are nearly all below), 1 MiB reads
// above. With THREADS 1 the walk hashes as it goes; with more, one worker thread per THREADS,
// started before the walk so their start-up overlaps it, each handed every THREADS-th batch of
// files (on the minbase one thread wins: a worker's start-up costs more than the hashing).
// Nothing is kept, written or compared: the floor of a cold manifest in JavaScript, from a
// fresh process like the agent's. `node FILE THREADS TOP...`.
export const NODE_LEANEST_COLD = `const fs = require('node:fs');
const crypto = require('node:crypto');
const { Worker, isMainThread, parentPort } = require('node:worker_threads');
const MiB = 1024 * 1024;
const buf = Buffer.allocUnsafe(MiB);
if (isMainThread) {
  const threads = Number(process.argv[2]);
  const workers = [];
  if (threads > 1) for (let i = 0; i < threads; i++) workers.push(new Worker(__filename));
  let batch = [], next = 0, n = 0;
  const hand = () => {
    if (threads > 1) workers[next].postMessage(batch); else hashAll(batch);
    next = (next + 1) % threads;
    batch = [];
  };
  const walk = (dir) => {
    for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = dir + '/' + d.name;
      const st = fs.lstatSync(p);
      n++;
      if (d.isDirectory()) walk(p);
      else if (d.isFile()) { batch.push(p, st.size); if (batch.length >= 512) hand(); }
    }
  };
  for (const top of process.argv.slice(3)) { n++; if (fs.lstatSync(top).isDirectory()) walk(top); }
  if (batch.length > 0) hand();
  for (const w of workers) w.postMessage(null);
  if (n === 0) process.exit(1);
} else {
  parentPort.on('message', (files) => (files === null ? parentPort.close() : hashAll(files)));
}
function hashAll(files) {
  for (let k = 0; k < files.length; k += 2) {
    if (files[k + 1] <= MiB) { crypto.hash('sha256', fs.readFileSync(files[k])); continue; }
    const fd = fs.openSync(files[k], 'r');
    const h = crypto.createHash('sha256');
    for (let r; (r = fs.readSync(fd, buf, 0, MiB, null)) > 0; ) h.update(buf.subarray(0, r));
    fs.closeSync(fd);
    h.digest();
  }
}`;

type BenchOptions = Record<string, { type: 'string'; default?: string } | { type: 'boolean'; default?: boolean }>;

/**
 * A benchmark's options, or its usage and an exit: it runs for minutes on both cores, so `--help`
 * or a mistyped option must not start one, nor end in a stack trace.
 */
export function benchArgs<O extends BenchOptions>(name: string, usage: string, options: O): ReturnType<typeof parseArgs<{ options: O }>>['values'] {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`npm run ${name} -- [options]\n\n${usage.replace(/^\n+/, '').trimEnd()}\n`);
    process.exit(0);
  }
  try {
    return parseArgs({ options }).values;
  } catch (err) {
    process.stderr.write(`${name}: ${(err as Error).message.split('\n')[0]}; see npm run ${name} -- --help\n`);
    process.exit(2);
  }
}

/** An AIDE config checking `tracked` under `tree` as the agent does (sha256, mode, owner, size, inode, link, type), its databases in `work`. */
export function writeAideConf(work: string, tree: string, tracked: string[]): string {
  const conf = path.join(work, 'aide.conf');
  writeFileSync(
    conf,
    [
      `database_in=file:${work}/aide.db`,
      `database_out=file:${work}/aide.db.new`,
      'gzip_dbout=no',
      `root_prefix=${tree}`,
      'report_url=stdout',
      'Q = sha256+p+u+g+s+i+l+ftype',
      ...tracked.map((t) => `${t} Q`),
      '!/.*/__pycache__',
      '',
    ].join('\n'),
  );
  return conf;
}
