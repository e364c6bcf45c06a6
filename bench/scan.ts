// npm run bench:scan — the fingerprint engine against AIDE and coreutils on one real Debian tree,
// side by side in one run: times (median of --runs), ratios against the issue's targets, peak RSS.
//
//   npm run bench:scan [-- --runs N] [-- --tree DIR]
//
// By default the tree is a private copy of the cached debootstrap minbase root the tests use
// (built on first use). Page caches are warm for every tool alike: this measures CPU and
// syscall cost, not the disk.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { readManifestFile } from '../agent/manifest-io.js';
import { DEFAULT_TRACKED } from '../shared/policy.js';
import { CACHE_DIR, copyTree, ensureMinbase } from '../test/helpers/debian-root.js';
import { cores, lpad, pad, sha256Rate, summarise, timed } from './measure.js';
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
    const idle = await idleRss(tree, manifestFile, state, runs);
    const rescan = summarise('rescan', idle.rescans.map((seconds) => ({ seconds, rssMb: idle.inProcess, status: 0 })));

    const rate = sha256Rate();
    const bound = bytes / (rate * cores);
    const s = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, summarise(k, v)])) as Record<string, Summary>;
    const rows: Array<[string, Summary]> = [
      ['quicksand-agent manifest (cold)', s.manifest!],
      ['quicksand-agent scan (warm, unchanged)', s.warm!],
      ['quicksand-agent scan (1% touched)', s.touched!],
      ['scan inside a running agent (warm)', rescan],
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
    out.push(`${pad('idle agent, all modules loaded', 40)}${lpad('', 10)}${lpad(idle.loaded.toFixed(1), 15)}`);
    out.push(`${pad('idle agent, after an isolated scan', 40)}${lpad('', 10)}${lpad(idle.isolated.toFixed(1), 15)}`);
    out.push(`${pad('idle agent, after an in-process scan', 40)}${lpad('', 10)}${lpad(idle.inProcess.toFixed(1), 15)}`);
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
    out.push(`warm scan inside a running agent vs aide --check  ${lpad((s.aideCheck!.seconds / rescan.seconds).toFixed(1), 7)}x   >= 20x    ${check(s.aideCheck!.seconds / rescan.seconds >= 20)}`);
    out.push(`warm scan vs find | xargs sha256sum               ${lpad((s.sha256sum!.seconds / s.warm!.seconds).toFixed(1), 7)}x faster`);
    out.push(`idle agent RSS (after an isolated scan)           ${lpad(idle.isolated.toFixed(1), 7)} MB  <= 60 MB  ${check(idle.isolated <= 60)}`);
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
 * RSS of a process that loaded the whole agent and sits idle: before any scan, after a scan run
 * in a child process (runIsolated: how a long-running agent should scan), and after a scan run
 * in the process itself (its high-water mark stays).
 */
async function idleRss(tree: string, manifestFile: string, state: string, runs: number): Promise<{ loaded: number; isolated: number; inProcess: number; rescans: number[] }> {
  const script = `
    const { runAgentCli } = await import(${JSON.stringify(path.join(repo, 'dist/agent/cli.js'))});
    const { runIsolated } = await import(${JSON.stringify(path.join(repo, 'dist/agent/isolated.js'))});
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const rss = () => process.memoryUsage().rss / 1024 / 1024;
    const argv = ['scan', '--root', ${JSON.stringify(tree)}, '--manifest', ${JSON.stringify(manifestFile)}, '--state', ${JSON.stringify(state)}, '--quiet'];
    await sleep(1000);
    const loaded = rss();
    const r = await runIsolated(argv);
    if (r.code !== 0) throw new Error(r.stderr);
    await sleep(2000);
    const isolated = rss();
    // A running agent rescanning: no process start, modules loaded, code already optimised.
    const times = [];
    for (let i = 0; i < ${runs + 1}; i++) {
      const t0 = performance.now();
      const code = await runAgentCli(argv, { stdout: () => {}, stderr: () => {}, interactive: false });
      if (code !== 0) throw new Error('in-process scan exited with ' + code);
      times.push((performance.now() - t0) / 1000);
    }
    await sleep(2000);
    process.stdout.write(JSON.stringify({ loaded, isolated, inProcess: rss(), rescans: times.slice(1) }));
  `;
  const child = spawn('node', ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString()));
  await new Promise((r) => child.on('close', r));
  return JSON.parse(text) as { loaded: number; isolated: number; inProcess: number; rescans: number[] };
}

await main();
