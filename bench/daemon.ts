// The agent daemon as a host runs it, for the benchmarks: a real server on loopback, an enrolled
// `quicksand-agent run` watching a tree, its start-up full scan (in a child process) done and
// reported. Its memory and CPU are sampled from /proc: the daemon itself, and the peak of the
// daemon plus its children (the scan child) while that first scan ran.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { median } from './measure.js';

export interface DaemonSample {
  /** Median RSS while idle and watching, MB; of it file-backed pages (node binary) and own (anonymous). */
  rss: number;
  anon: number;
  file: number;
  /** The same, summed over the daemon and its descendants (a helper process it keeps), MB. */
  treeRss: number;
  treeAnon: number;
  /** Peak RSS of the daemon plus its descendants, sampled every 50 ms through its start-up full scan, MB. */
  peakWithChildren: number;
  /**
   * The same peak as PSS: a page mapped by both (the node binary's, ~35-45 MB) counts half in each,
   * so the sum is the memory the pair takes from the host; RSS summed counts those pages twice.
   */
  peakPssWithChildren: number;
  /** The daemon's own RSS when that peak was sampled, MB (the rest is its children's). */
  peakDaemon: number;
  /** Peak of the daemon's RSS plus its scan child's, sampled together (the reader left out), MB; as PSS too. */
  peakDaemonScan: number;
  peakPssDaemonScan: number;
  /** CPU of the idle daemon (all threads), % of one core. */
  cpu: number;
  /** Seconds from start to its start-up full scan reported. */
  startupScan: number;
  /** Inotify watches the daemon and its children hold. */
  watches: number;
  /** PSS of the idle daemon alone, MB (its share of pages it maps with others). */
  pss: number;
  /**
   * Each process on its own, by its role (the daemon, the inotifywait reader, the index loader,
   * the scan child): its peak RSS and PSS over the start-up full scan, and what it holds idle
   * (0 for a child gone by then), MB. Which of them holds the peak shows where to cut.
   */
  processes: ProcessPeak[];
}

export interface ProcessPeak {
  role: string;
  peakRss: number;
  peakPss: number;
  /** Its own (anonymous) memory when its RSS peaked. */
  peakAnon: number;
  idleRss: number;
  idlePss: number;
}

export async function measureDaemon(opts: { agent: string; repo: string; tree: string; manifestFile: string; work: string; idleSeconds?: number; settleSeconds?: number; args?: string[] }): Promise<DaemonSample> {
  const serverMain = path.join(opts.repo, 'dist/server/main.js');
  const db = path.join(opts.work, 'server.db');
  const state = path.join(opts.work, `daemon-state-${Date.now()}`);
  const port = await freePort();
  const procs: ChildProcess[] = [];
  const start = (file: string, args: string[]): { proc: ChildProcess; output: () => string } => {
    const proc = spawn('node', [file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(proc);
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    return { proc, output: () => out };
  };
  try {
    const server = start(serverMain, ['start', '--db', db, '--port', String(port), '--host', '127.0.0.1']);
    await until('the server', () => /listening/i.test(server.output()));
    const secret = execFileSync('node', [serverMain, 'enroll-secret', '--db', db], { encoding: 'utf8' }).trim().split('\n').pop()!;
    execFileSync('node', [opts.agent, 'enroll', '--server', `http://127.0.0.1:${port}`, '--secret', secret, '--state', state], { stdio: 'ignore' });
    const t0 = performance.now();
    const daemon = start(opts.agent, ['run', '--root', opts.tree, '--manifest', opts.manifestFile, '--state', state, ...(opts.args ?? [])]);
    const pid = daemon.proc.pid!;
    let peak = 0;
    let peakPss = 0;
    let peakDaemon = 0;
    let peakDaemonScan = 0;
    let peakPssDaemonScan = 0;
    const peaks = new Map<string, ProcessPeak>();
    await until(
      'the start-up full scan',
      () => {
        let pair = 0;
        let pairPss = 0;
        for (const p of [pid, ...descendants(pid)]) {
          const role = p === pid ? 'daemon' : roleOf(p);
          const now = statusMb(p);
          const pss = pssMb(p);
          if (role === 'daemon' || role === 'scan child') {
            pair += now.rss;
            pairPss += pss;
          }
          const was = peaks.get(role) ?? { role, peakRss: 0, peakPss: 0, peakAnon: 0, idleRss: 0, idlePss: 0 };
          peaks.set(role, { ...was, ...(now.rss > was.peakRss ? { peakRss: now.rss, peakAnon: now.anon } : {}), peakPss: Math.max(was.peakPss, pss) });
        }
        peakDaemonScan = Math.max(peakDaemonScan, pair);
        peakPssDaemonScan = Math.max(peakPssDaemonScan, pairPss);
        const rss = treeRssMb(pid);
        if (rss > peak) {
          peak = rss;
          peakDaemon = statusMb(pid).rss;
        }
        peakPss = Math.max(peakPss, treePssMb(pid));
        if (/scan failed/.test(daemon.output())) throw new Error(`the daemon's scan failed:\n${daemon.output()}`);
        return /full scan: (clean|drift)/.test(daemon.output());
      },
      600_000,
      50,
    );
    const startupScan = (performance.now() - t0) / 1000;
    // The daemon compacts its heap 5 s after its last report; the pages go back some seconds later.
    await sleep((opts.settleSeconds ?? 15) * 1000);
    const idle = await sampleIdle(pid, opts.idleSeconds ?? 15);
    const watches = [pid, ...descendants(pid)].reduce((sum, p) => sum + inotifyWatches(p), 0);
    for (const p of [pid, ...descendants(pid)]) {
      const role = p === pid ? 'daemon' : roleOf(p);
      const was = peaks.get(role) ?? { role, peakRss: 0, peakPss: 0, peakAnon: 0, idleRss: 0, idlePss: 0 };
      peaks.set(role, { ...was, idleRss: statusMb(p).rss, idlePss: pssMb(p) });
    }
    return { ...idle, pss: pssMb(pid), peakWithChildren: peak, peakPssWithChildren: peakPss, peakDaemon, peakDaemonScan, peakPssDaemonScan, startupScan, watches, processes: [...peaks.values()] };
  } finally {
    for (const p of procs.reverse()) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    await sleep(500);
  }
}

/** Memory and CPU of an idle process (and its descendants), sampled every 500 ms for `seconds`. */
async function sampleIdle(pid: number, seconds: number): Promise<Omit<DaemonSample, 'peakWithChildren' | 'peakPssWithChildren' | 'peakDaemon' | 'peakDaemonScan' | 'peakPssDaemonScan' | 'startupScan' | 'watches' | 'pss' | 'processes'>> {
  const samples: Array<{ rss: number; anon: number; file: number; treeRss: number; treeAnon: number }> = [];
  const all = (): number[] => [pid, ...descendants(pid)];
  const ticks0 = all().reduce((t, p) => t + cpuTicks(p), 0);
  const c0 = performance.now();
  const n = Math.max(4, seconds * 2);
  for (let i = 0; i < n; i++) {
    const self = statusMb(pid);
    const others = descendants(pid).map(statusMb);
    samples.push({ ...self, treeRss: others.reduce((t, s) => t + s.rss, self.rss), treeAnon: others.reduce((t, s) => t + s.anon, self.anon) });
    await sleep(500);
  }
  const cpu = ((all().reduce((t, p) => t + cpuTicks(p), 0) - ticks0) / 100 / ((performance.now() - c0) / 1000)) * 100;
  const med = (k: keyof (typeof samples)[number]): number => median(samples.map((x) => x[k]));
  return { rss: med('rss'), anon: med('anon'), file: med('file'), treeRss: med('treeRss'), treeAnon: med('treeAnon'), cpu };
}

/** A Node process that does nothing but keep a timer: the floor every Node daemon stands on. */
export async function measureIdleNode(flags: string[], seconds = 5): Promise<DaemonSample> {
  const proc = spawn('node', [...flags, '-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  try {
    await sleep(2000);
    const idle = await sampleIdle(proc.pid!, seconds);
    return { ...idle, pss: pssMb(proc.pid!), peakWithChildren: NaN, peakPssWithChildren: NaN, peakDaemon: NaN, peakDaemonScan: NaN, peakPssDaemonScan: NaN, startupScan: NaN, watches: 0, processes: [] };
  } finally {
    proc.kill('SIGTERM');
  }
}

/** RSS, anonymous and file-backed memory of a process from /proc, MB (0 once it ended). */
export function statusMb(pid: number): { rss: number; anon: number; file: number } {
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // ended meanwhile
  }
  const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) / 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

async function until(what: string, ok: () => boolean, ms = 60_000, every = 100): Promise<void> {
  for (const t0 = Date.now(); !ok(); await sleep(every)) if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
}

/** utime + stime of a process (all its threads), in clock ticks (100 per second on Linux). */
function cpuTicks(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 0; // ended meanwhile
  }
  const fields = stat.replace(/^.*\) /, '').split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function descendants(pid: number): number[] {
  const out: number[] = [];
  for (const c of children(pid)) out.push(c, ...descendants(c));
  return out;
}

/** One field of /proc/PID/<file> summed over a process and everything below it, MB (gone processes count 0). */
function treeKbField(pid: number, file: string, field: RegExp): number {
  let kb = 0;
  for (const p of [pid, ...descendants(pid)]) {
    try {
      kb += Number(field.exec(readFileSync(`/proc/${p}/${file}`, 'utf8'))?.[1] ?? 0);
    } catch {
      // ended meanwhile
    }
  }
  return kb / 1024;
}

const treeRssMb = (pid: number): number => treeKbField(pid, 'status', /^VmRSS:\s+(\d+) kB/m);

/** PSS of one process from /proc/PID/smaps_rollup, MB (0 once it ended). */
function pssMb(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** What a child of the daemon is, from its command line. */
function roleOf(pid: number): string {
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return 'other child';
  }
  if (argv.some((a) => a.endsWith('inotifywait'))) return 'inotifywait';
  if (argv.some((a) => /index-loader\.[jt]s$/.test(a))) return 'index loader';
  if (argv.includes('scan')) return 'scan child';
  return 'other child';
}
const treePssMb = (pid: number): number => treeKbField(pid, 'smaps_rollup', /^Pss:\s+(\d+) kB/m);

/** Inotify watches a process holds, from /proc/PID/fdinfo. */
function inotifyWatches(pid: number): number {
  let n = 0;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return 0;
  }
  for (const fd of fds) {
    try {
      const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      n += (info.match(/^inotify wd:/gm) ?? []).length;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}
