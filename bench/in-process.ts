// npm run bench:in-process — where the daemon's full scan should run: in a child process of its
// own (what `run` does, agent/daemon/isolated.ts), or inside the long-lived daemon. Side by side
// on one tree, warm (the stat cache filled, nothing changed), as the daemon's scheduled scans are:
//   - the full scan as the daemon's child runs it (a fresh node, its V8 flags and allocator
//     settings, --threads 1);
//   - the same scan repeated inside one long-lived process that has loaded the daemon's modules,
//     once with the daemon's own V8 flags (no optimising compilers: what an in-process scan
//     would really run under) and once with full V8; and what that process holds after its scans;
//   - aide --check of the same tree.
// The goal for an in-process scan of the minbase is 1/20 of aide --check; the child's
// price is a node start-up per scan, its gain that the daemon never holds a scan's memory.
//
//   npm run bench:in-process [-- --tree 6k|106k|1m] [-- --scans N]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { CHILD_HEAP, childEnv } from '../agent/daemon/isolated.js';
import { DAEMON_V8_FLAGS } from '../agent/heap-flags.js';
import { DEFAULT_TRACKED } from '../shared/policy.js';
import { statusMb } from './daemon.js';
import { RACY_WAIT_MS, benchArgs, lpad, median, pad, timed, writeAideConf } from './measure.js';
import { CACHE, ensureNamedTree } from './trees.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const agent = path.join(repo, 'dist/agent/main.js');
// The daemon's own V8 flags (agent/main.ts sets them for `run`), here on the command line.
const DAEMON_FLAGS = DAEMON_V8_FLAGS.split(' ');

// The long-lived process: loads what the daemon loads, settles, then runs the scan command N
// times in itself and reports each scan's time and, after the daemon's own heap compaction and
// 6 s idle (the daemon compacts 5 s after its last work), what it holds. Its peak is sampled from outside.
const IN_PROCESS = `
const [dist, root, manifest, state, scans] = process.argv.slice(2);
const mem = () => {
  const t = require('node:fs').readFileSync('/proc/self/smaps_rollup', 'utf8');
  const kb = (k) => Number(new RegExp('^' + k + ':\\\\s+(\\\\d+) kB', 'm').exec(t)[1]) / 1024;
  return { rss: kb('Rss'), anon: kb('Anonymous') };
};
(async () => {
  await import(dist + '/agent/commands/run.js');
  const { scanCommand } = await import(dist + '/agent/commands/scan.js');
  // The daemon's own compaction, as it runs when it goes quiet (agent/daemon/compact.ts).
  const compact = (await import(dist + '/agent/daemon/compact.js')).heapCompactor();
  compact();
  await new Promise((r) => setTimeout(r, 1000));
  const before = mem();
  const io = { stdout: () => {}, stderr: (t) => process.stderr.write(t), interactive: false };
  const ms = [];
  for (let i = 0; i < Number(scans); i++) {
    const t0 = performance.now();
    const code = await scanCommand({ root, manifest, state, quiet: true, json: true, threads: '1' }, io);
    ms.push(performance.now() - t0);
    if (code !== 0) throw new Error('scan found drift (exit ' + code + '): the tree changed under the bench');
  }
  compact();
  await new Promise((r) => setTimeout(r, 6000));
  process.stdout.write(JSON.stringify({ ms, before, after: mem() }));
})().catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(2); });
`;

interface InProcess {
  ms: number[];
  before: { rss: number; anon: number };
  after: { rss: number; anon: number };
  peakRss: number;
}

/** Runs the in-process program under `flags`, sampling its RSS every 50 ms for the peak. */
async function inProcess(flags: string[], program: string, tree: string, manifest: string, state: string, scans: number): Promise<InProcess> {
  const child = spawn(process.execPath, [...flags, program, path.join(repo, 'dist'), tree, manifest, state, String(scans)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, statusMb(child.pid!).rss)), 50);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearInterval(sampler);
  if (code !== 0) throw new Error(`the in-process scans exited with ${code}: ${err.slice(-2000)}`);
  return { ...(JSON.parse(out) as Omit<InProcess, 'peakRss'>), peakRss };
}

async function main(): Promise<void> {
  const values = benchArgs(
    'bench:in-process',
    `
Where the daemon's full scan runs: in a child process (what it does) or in the daemon itself.
On one tree, warm: the scan as the daemon's child runs it, the same scan repeated inside one
long-lived process with the daemon's V8 flags and with full V8 (and what that process holds
afterwards), and aide --check.

  --tree NAME   6k (the debootstrap minbase, default), 106k or 1m
  --scans N     scans of each kind (default 5)
`,
    { tree: { type: 'string', default: '6k' }, scans: { type: 'string', default: '5' } },
  );
  const scans = Number(values.scans);
  if (!Number.isInteger(scans) || scans < 2) throw new Error(`--scans expects a whole number >= 2, not "${values.scans}"`);
  const { dir: tree, remove } = ensureNamedTree(values.tree);
  const work = mkdtempSync(path.join(CACHE, 'bench-in-process-'));
  try {
    await sleep(RACY_WAIT_MS);
    const manifest = path.join(work, 'manifest.json.gz');
    const state = path.join(work, 'state');
    process.stderr.write(`${values.tree}: manifest\n`);
    timed(['node', agent, 'manifest', '--root', tree, '--out', manifest, '--state', state, '--quiet']);
    const scanArgs = ['scan', '--root', tree, '--manifest', manifest, '--state', state, '--json', '--quiet', '--threads', '1'];
    timed(['node', agent, ...scanArgs]); // fills what a first scan remembers (clean paths)
    process.stderr.write(`${values.tree}: ${scans} scans as the daemon's child\n`);
    const child = Array.from({ length: scans }, () => timed(['node', ...CHILD_HEAP, agent, ...scanArgs], { env: childEnv(process.env) }));
    const program = path.join(work, 'in-process.cjs');
    writeFileSync(program, IN_PROCESS);
    process.stderr.write(`${values.tree}: ${scans} scans in one process, the daemon's V8 flags\n`);
    const daemonFlags = await inProcess(DAEMON_FLAGS, program, tree, manifest, state, scans);
    process.stderr.write(`${values.tree}: ${scans} scans in one process, full V8\n`);
    const fullV8 = await inProcess(['--max-semi-space-size=1'], program, tree, manifest, state, scans);
    const tracked = DEFAULT_TRACKED.filter((t) => existsSync(tree + t));
    const conf = writeAideConf(work, tree, tracked);
    process.stderr.write(`${values.tree}: aide --init, then ${scans} x aide --check\n`);
    timed(['aide', `--config=${conf}`, '--init']);
    timed(['mv', path.join(work, 'aide.db.new'), path.join(work, 'aide.db')]);
    const aide = median(Array.from({ length: scans }, () => timed(['aide', `--config=${conf}`, '--check']).seconds));
    const childS = median(child.map((r) => r.seconds));
    // The first scan in a process compiles and warms what later ones reuse: shown apart.
    const later = (r: InProcess): number => median(r.ms.slice(1)) / 1000;
    const rows: Array<[string, string, string]> = [
      ['aide --check', `${aide.toFixed(3)} s`, '1'],
      ["scan as the daemon's child (fresh node)", `${childS.toFixed(3)} s`, `1/${(aide / childS).toFixed(1)}`],
      ['  its peak RSS', `${Math.max(...child.map((r) => r.rssMb)).toFixed(1)} MB`, ''],
      ["in process, daemon's V8 flags: first scan", `${(daemonFlags.ms[0]! / 1000).toFixed(3)} s`, `1/${(aide / (daemonFlags.ms[0]! / 1000)).toFixed(1)}`],
      ['  later scans (median)', `${later(daemonFlags).toFixed(3)} s`, `1/${(aide / later(daemonFlags)).toFixed(1)}`],
      ['in process, full V8: first scan', `${(fullV8.ms[0]! / 1000).toFixed(3)} s`, `1/${(aide / (fullV8.ms[0]! / 1000)).toFixed(1)}`],
      ['  later scans (median)', `${later(fullV8).toFixed(3)} s`, `1/${(aide / later(fullV8)).toFixed(1)}`],
    ];
    for (const [label, r] of [["daemon's V8 flags", daemonFlags], ['full V8', fullV8]] as const) {
      rows.push([`long-lived process (${label}): RSS before / peak / after`, `${r.before.rss.toFixed(1)} / ${r.peakRss.toFixed(1)} / ${r.after.rss.toFixed(1)} MB`, '']);
      rows.push(['  own (anonymous) before / after', `${r.before.anon.toFixed(1)} / ${r.after.anon.toFixed(1)} MB`, '']);
    }
    process.stdout.write(`tree ${values.tree}, ${scans} scans of each kind, warm (nothing changed), one hashing thread\n`);
    process.stdout.write(`${pad('', 58)}${lpad('measured', 26)}   of aide --check\n`);
    for (const [label, measured, ratio] of rows) process.stdout.write(`${pad(label, 58)}${lpad(measured, 26)}   ${ratio}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
    remove();
  }
}

await main();
