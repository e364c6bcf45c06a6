// npm run bench:scan — the fingerprint engine against AIDE and coreutils on one real Debian tree,
// side by side in one run: times (median of --runs), ratios against the issue's targets, peak RSS.
//
//   npm run bench:scan [-- --runs N] [-- --tree DIR]
//
// By default the tree is a private copy of the cached debootstrap minbase root the tests use
// (built on first use). Page caches are warm for every tool alike: this measures CPU and
// syscall cost, not the disk.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { readManifestFile } from '../agent/manifest/io.js';
import { DEFAULT_TRACKED } from '../shared/policy.js';
import { CACHE_DIR, copyTree, ensureMinbase } from '../test/helpers/debian-root.js';
import { cores, lpad, median, pad, sha256Rate, summarise, timed } from './measure.js';
import type { Run, Summary } from './measure.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// QUICKSAND_AGENT: another build of the agent to measure (default: this checkout's dist/).
const agent = process.env.QUICKSAND_AGENT ?? path.join(repo, 'dist/agent/main.js');
// Digests of files changed this recently are not cached (racy-clean guard): let a fresh copy age.
const RACY_WAIT_MS = 2100;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, tree: { type: 'string' } } });
  const runs = Math.max(1, Number(values.runs));
  if (!existsSync(agent)) throw new Error(`${agent} is missing: run npm run build first (npm run bench:scan does)`);

  const work = mkdtempSync(path.join(CACHE_DIR, 'bench-scan-'));
  let copy: { dir: string; remove: () => void } | undefined;
  try {
    let tree = values.tree ? path.resolve(values.tree) : undefined;
    if (!tree) {
      process.stderr.write('preparing a private copy of the debootstrap minbase tree...\n');
      copy = copyTree(ensureMinbase());
      tree = copy.dir;
    }
    await sleep(RACY_WAIT_MS);
    const tracked = DEFAULT_TRACKED.filter((t) => existsSync(tree + t));
    const aideConf = writeAideConf(work, tree, tracked);
    const manifestFile = path.join(work, 'manifest.json.gz');
    const state = path.join(work, 'state');

    const qsManifest = (): Run => {
      rmSync(state, { recursive: true, force: true }); // cold: no stat cache
      return timed(['node', agent, 'manifest', '--root', tree!, '--out', manifestFile, '--state', state, '--quiet']);
    };
    const qsScan = (): Run => timed(['node', agent, 'scan', '--root', tree!, '--manifest', manifestFile, '--state', state, '--quiet']);
    const aideInit = (): Run => {
      const r = timed(['aide', `--config=${aideConf}`, '--init']);
      rmSync(path.join(work, 'aide.db'), { force: true });
      timed(['mv', path.join(work, 'aide.db.new'), path.join(work, 'aide.db')]);
      return r;
    };
    const aideCheck = (): Run => timed(['aide', `--config=${aideConf}`, '--check']);
    const sha256sum = (): Run =>
      timed([`find ${tracked.map((t) => `'${tree}${t}'`).join(' ')} -type f -print0 | xargs -0 -r -n 256 -P ${cores} sha256sum > /dev/null`], { shell: true });

    const results: Record<string, Run[]> = { manifest: [], warm: [], touched: [], aideInit: [], aideCheck: [], sha256sum: [] };
    let regular: string[] = [];
    let bytes = 0;
    let paths = 0;
    for (let round = 0; round < runs; round++) {
      process.stderr.write(`round ${round + 1}/${runs}\n`);
      results.manifest!.push(qsManifest());
      if (round === 0) {
        const m = await readManifestFile(manifestFile);
        paths = m.files.length;
        const files = m.files.filter((f) => f.type === 'file' && f.rawPath === undefined);
        regular = files.map((f) => f.path);
        bytes = files.reduce((s, f) => s + (f.size ?? 0), 0);
      }
      results.warm!.push(qsScan());
      // 1% of the regular files, a different slice each round: stat (mtime, ctime) moves.
      const now = new Date();
      for (let i = round; i < regular.length; i += 100) utimesSync(tree + regular[i]!, now, now);
      const touchedAt = Date.now();
      results.touched!.push(qsScan());
      results.aideInit!.push(aideInit());
      results.aideCheck!.push(aideCheck());
      results.sha256sum!.push(sha256sum());
      const wait = RACY_WAIT_MS - (Date.now() - touchedAt);
      if (wait > 0) await sleep(wait);
    }
    const idle = await idleDaemonRss(tree, manifestFile, work);

    const rate = sha256Rate();
    const bound = bytes / (rate * cores);
    const s = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, summarise(k, v)])) as Record<string, Summary>;
    const rows: Array<[string, Summary]> = [
      ['quicksand-agent manifest (cold)', s.manifest!],
      ['quicksand-agent scan (warm, unchanged)', s.warm!],
      ['quicksand-agent scan (1% touched)', s.touched!],
      ['aide --init', s.aideInit!],
      ['aide --check', s.aideCheck!],
      [`find | xargs -P${cores} sha256sum`, s.sha256sum!],
    ];
    const out: string[] = [];
    out.push(`tree: ${tree} (${tracked.join(' ')})`);
    out.push(`      ${paths} paths, ${regular.length} regular files, ${(bytes / 1024 ** 2).toFixed(1)} MiB; ${cores} cores; sha256 ${(rate / 1e6).toFixed(0)} MB/s per core`);
    out.push(`      hashing bound (bytes / (sha256 rate x cores)): ${bound.toFixed(3)} s`);
    out.push(`runs: ${runs} rounds, interleaved; times are medians, RSS the peak over the runs`);
    out.push('');
    out.push(`${pad('', 40)}${lpad('time (s)', 10)}${lpad('peak RSS (MB)', 15)}   runs (s)`);
    for (const [label, r] of rows) out.push(`${pad(label, 40)}${lpad(r.seconds.toFixed(3), 10)}${lpad(r.rssMb.toFixed(1), 15)}   ${r.runs.map((x) => x.toFixed(2)).join(' ')}`);
    out.push(`${pad('idle agent daemon (run), watching', 40)}${lpad('', 10)}${lpad(idle.rss.toFixed(1), 15)}   of it: node binary and other file pages ${idle.file.toFixed(1)}, own memory ${idle.anon.toFixed(1)}; CPU ${idle.cpu.toFixed(2)}% of a core`);
    out.push('');
    const check = (ok: boolean): string => (ok ? 'holds' : 'MISSED');
    const warmVsAide = s.aideCheck!.seconds / s.warm!.seconds;
    const coldVsAide = s.manifest!.seconds / s.aideInit!.seconds;
    const coldVsBound = s.manifest!.seconds / bound;
    const touchedVsWarm = s.touched!.seconds / s.warm!.seconds;
    out.push('target                                            measured      goal');
    out.push(`warm scan faster than aide --check                ${lpad(warmVsAide.toFixed(1), 7)}x   >= 20x    ${check(warmVsAide >= 20)}`);
    out.push(`cold manifest time / aide --init time             ${lpad(coldVsAide.toFixed(2), 7)}    <= 1.0    ${check(coldVsAide <= 1)}`);
    out.push(`cold manifest time / hashing bound                ${lpad(coldVsBound.toFixed(1), 7)}x   <= 1.5x   ${check(coldVsBound <= 1.5)}`);
    out.push(`scan after 1% touched / warm scan                 ${lpad(touchedVsWarm.toFixed(2), 7)}x   <= 3x     ${check(touchedVsWarm <= 3)}`);
    out.push(`warm scan vs find | xargs sha256sum               ${lpad((s.sha256sum!.seconds / s.warm!.seconds).toFixed(1), 7)}x faster`);
    out.push(`idle agent daemon RSS                             ${lpad(idle.rss.toFixed(1), 7)} MB  <= 60 MB  ${check(idle.rss <= 60)}`);
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    copy?.remove();
    rmSync(work, { recursive: true, force: true });
  }
}

/** AIDE with the rule set the agent applies: sha256, permissions, owner, size, inode, link target, type. */
function writeAideConf(work: string, tree: string, tracked: string[]): string {
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
  mkdirSync(work, { recursive: true });
  return conf;
}

/**
 * The idle agent as a host runs it: a real server on loopback, an enrolled agent daemon
 * (`quicksand-agent run`) watching the tree, its start-up full scan (in a child process) done and
 * reported. Then nothing happens for a while and its RSS is sampled from /proc: the median of the
 * window, and what part of it is file-backed (the node binary's own pages, shared by every Node
 * process) and what is the agent's own (anonymous).
 */
async function idleDaemonRss(tree: string, manifestFile: string, work: string): Promise<{ rss: number; anon: number; file: number; cpu: number }> {
  const serverMain = path.join(repo, 'dist/server/main.js');
  const db = path.join(work, 'server.db');
  const state = path.join(work, 'daemon-state');
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
  const until = async (what: string, ok: () => boolean, ms = 60_000): Promise<void> => {
    for (const t0 = Date.now(); !ok(); await sleep(100)) if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
  };
  try {
    const server = start(serverMain, ['start', '--db', db, '--port', String(port), '--host', '127.0.0.1']);
    await until('the server', () => /listening/i.test(server.output()));
    const secret = execFileSync('node', [serverMain, 'enroll-secret', '--db', db], { encoding: 'utf8' }).trim().split('\n').pop()!;
    execFileSync('node', [agent, 'enroll', '--server', `http://127.0.0.1:${port}`, '--secret', secret, '--state', state], { stdio: 'ignore' });
    const daemon = start(agent, ['run', '--root', tree, '--manifest', manifestFile, '--state', state]);
    await until('the start-up full scan', () => /full scan: clean/.test(daemon.output()));
    // The daemon compacts its heap 5 s after its last report; the pages go back some seconds later.
    await sleep(20_000);
    const samples: Array<{ rss: number; anon: number; file: number }> = [];
    // utime + stime of the daemon (all its threads), in clock ticks (100 per second on Linux).
    const cpuTicks = (): number => {
      const fields = readFileSync(`/proc/${daemon.proc.pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
      return Number(fields[11]) + Number(fields[12]);
    };
    const ticks0 = cpuTicks();
    const t0 = performance.now();
    for (let i = 0; i < 30; i++) {
      const status = readFileSync(`/proc/${daemon.proc.pid}/status`, 'utf8');
      const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) / 1024;
      samples.push({ rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') });
      await sleep(500);
    }
    const cpu = ((cpuTicks() - ticks0) / 100 / ((performance.now() - t0) / 1000)) * 100;
    return { rss: median(samples.map((x) => x.rss)), anon: median(samples.map((x) => x.anon)), file: median(samples.map((x) => x.file)), cpu };
  } finally {
    for (const p of procs.reverse()) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    await sleep(500);
  }
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

await main();
