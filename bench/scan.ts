// npm run bench:scan — the agent against its floors and AIDE on real trees of 6k, ~106k and 1M
// paths, side by side in one run: the stat floor (`find -printf`, a C walker that stats every
// path), the hashing bound (bytes / (sha256 rate measured now x cores)), aide --init / --check,
// the agent's cold manifest, warm scan and scan after 1% touched, and the real daemon
// (`quicksand-agent run`, enrolled with a loopback server, watching): its idle memory and CPU,
// and the peak of it and its scan child through its start-up full scan.
//
//   [QUICKSAND_AGENT_BEFORE=old/dist/agent/main.js] npm run bench:scan [-- --runs N] [-- --trees 6k,106k,1m,2g] [-- --aide-max PATHS] [-- --no-daemon]
//
// Trees: 6k = a private copy of the debootstrap minbase the tests use; 106k = the debootstrap
// tree with language packages plus six copies of its /usr under /opt (real file sizes); 1m = one
// million small files (100 per folder); 2g = the bytes-heavy tree, ~2 GiB in files of 4 KiB to
// 64 MiB (opt-in: not in the default --trees). --no-daemon leaves the daemon rows out.
// Big trees are cached under /var/tmp/quicksand-bench.
// Page caches are warm for every tool alike: this measures CPU and syscall cost, not the disk.
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { readManifestFile } from '../agent/manifest/io.js';
import { DEFAULT_TRACKED } from '../shared/policy.js';
import { copyTree, ensureMinbase } from '../test/helpers/debian-root.js';
import { measureDaemon } from './daemon.js';
import type { DaemonSample } from './daemon.js';
import { NODE_LEANEST_COLD, NODE_LEANEST_WALK, RACY_WAIT_MS, benchArgs, cores, lpad, pad, sha256Rate, summarise, timed, writeAideConf } from './measure.js';
import type { Run, Summary } from './measure.js';
import { CACHE, ensureBytesHeavy, ensureSynthetic, ensureUsrCopies } from './trees.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// QUICKSAND_AGENT: another build of the agent to measure (default: this checkout's dist/).
const agent = process.env.QUICKSAND_AGENT ?? path.join(repo, 'dist/agent/main.js');
// QUICKSAND_AGENT_BEFORE: an earlier build measured in the same rounds, for before/after side by side.
const before = process.env.QUICKSAND_AGENT_BEFORE;

interface TreeResult {
  name: string;
  paths: number;
  regular: number;
  bytes: number;
  bound: number;
  rate: number;
  s: Record<string, Summary | undefined>;
  daemon: DaemonSample | undefined;
  runs: number;
}

async function measureTree(name: string, tree: string, runs: number, withAide: boolean, withDaemon: boolean): Promise<TreeResult> {
  const work = mkdtempSync(path.join(CACHE, 'bench-scan-'));
  try {
    const tracked = DEFAULT_TRACKED.filter((t) => existsSync(tree + t));
    const aideConf = writeAideConf(work, tree, tracked);
    const manifestFile = path.join(work, 'manifest.json.gz');
    const state = path.join(work, 'state');
    const agentJobs = (build: string, out: string, st: string): Record<string, () => Run> => ({
      manifest: () => {
        rmSync(st, { recursive: true, force: true }); // cold: no stat cache
        return timed(['node', build, 'manifest', '--root', tree, '--out', out, '--state', st, '--quiet']);
      },
      warm: () => timed(['node', build, 'scan', '--root', tree, '--manifest', out, '--state', st, '--quiet']),
    });
    const now = agentJobs(agent, manifestFile, state);
    const earlier = before === undefined ? undefined : agentJobs(before, path.join(work, 'before.json.gz'), path.join(work, 'before-state'));
    const roots = tracked.map((t) => `'${tree}${t}'`).join(' ');
    const walkProgram = path.join(work, 'node-walk.cjs');
    writeFileSync(walkProgram, NODE_LEANEST_WALK);
    const coldProgram = path.join(work, 'node-cold.cjs');
    writeFileSync(coldProgram, NODE_LEANEST_COLD);
    const jobs: Record<string, () => Run> = {
      find: () => timed([`find ${roots} -printf '%i %s %T@ %C@ %m\\n' > /dev/null`], { shell: true }),
      nodeStart: () => timed(['node', '-e', '0']),
      nodeWalk: () => timed(['node', walkProgram, ...tracked.map((t) => tree + t)]),
      nodeCold1: () => timed(['node', coldProgram, '1', ...tracked.map((t) => tree + t)]),
      nodeCold: () => timed(['node', coldProgram, String(cores), ...tracked.map((t) => tree + t)]),
    };
    const results: Record<string, Run[]> = { find: [], nodeStart: [], nodeWalk: [], nodeCold1: [], nodeCold: [], manifest: [], warm: [], touched: [], aideInit: [], aideCheck: [], manifestBefore: [], warmBefore: [], touchedBefore: [] };
    let regular: string[] = [];
    let bytes = 0;
    let paths = 0;
    for (let round = 0; round < runs; round++) {
      process.stderr.write(`${name}: round ${round + 1}/${runs}\n`);
      results.find!.push(jobs.find!());
      results.nodeStart!.push(jobs.nodeStart!());
      results.nodeWalk!.push(jobs.nodeWalk!());
      results.nodeCold1!.push(jobs.nodeCold1!());
      results.nodeCold!.push(jobs.nodeCold!());
      results.manifest!.push(now.manifest!());
      if (earlier) results.manifestBefore!.push(earlier.manifest!());
      if (round === 0) {
        const m = await readManifestFile(manifestFile);
        paths = m.files.length;
        const files = m.files.filter((f) => f.type === 'file' && f.rawPath === undefined);
        regular = files.map((f) => f.path);
        bytes = files.reduce((sum, f) => sum + (f.size ?? 0), 0);
      }
      results.warm!.push(now.warm!());
      if (earlier) results.warmBefore!.push(earlier.warm!());
      // 1% of the regular files, a different slice each round: stat (mtime, ctime) moves.
      const at = new Date();
      for (let i = round; i < regular.length; i += 100) utimesSync(tree + regular[i]!, at, at);
      const touchedAt = Date.now();
      results.touched!.push(now.warm!());
      if (earlier) results.touchedBefore!.push(earlier.warm!());
      if (withAide) {
        results.aideInit!.push(timed(['aide', `--config=${aideConf}`, '--init']));
        rmSync(path.join(work, 'aide.db'), { force: true });
        timed(['mv', path.join(work, 'aide.db.new'), path.join(work, 'aide.db')]);
        results.aideCheck!.push(timed(['aide', `--config=${aideConf}`, '--check']));
      }
      const wait = RACY_WAIT_MS - (Date.now() - touchedAt);
      if (wait > 0) await sleep(wait);
    }
    if (withDaemon) process.stderr.write(`${name}: the daemon\n`);
    const daemon = withDaemon ? await measureDaemon({ agent, repo, tree, manifestFile, work }) : undefined;
    const rate = sha256Rate();
    const s = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.length > 0 ? summarise(k, v) : undefined]));
    return { name, paths, regular: regular.length, bytes, rate, bound: bytes / (rate * cores), s, daemon, runs };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function table(results: TreeResult[]): string {
  const out: string[] = [];
  const col = (xs: string[]): string => xs.map((x) => lpad(x, 14)).join('');
  const cell = (r: Summary | undefined, digits = 2): string => (r ? `${r.seconds.toFixed(digits)} s` : 'not run');
  out.push(`${pad('', 44)}${col(results.map((r) => r.name))}`);
  const row = (label: string, f: (r: TreeResult) => string): void => void out.push(`${pad(label, 44)}${col(results.map(f))}`);
  row('paths in the manifest', (r) => String(r.paths));
  row('regular files / MiB', (r) => `${r.regular}/${(r.bytes / 1024 ** 2).toFixed(0)}`);
  row('rounds (medians of)', (r) => String(r.runs));
  row('find -printf (stat floor)', (r) => cell(r.s.find));
  row('node: start-up alone', (r) => cell(r.s.nodeStart));
  row('node: readdir + lstat of every path', (r) => cell(r.s.nodeWalk));
  row('node: that walk + sha256 (1 thread)', (r) => cell(r.s.nodeCold1));
  row(`node: that walk + sha256 (${cores} threads)`, (r) => cell(r.s.nodeCold));
  row(`hashing bound (sha256 x ${cores} cores)`, (r) => `${r.bound.toFixed(2)} s`);
  row('aide --init', (r) => cell(r.s.aideInit));
  row('aide --check', (r) => cell(r.s.aideCheck));
  row('quicksand-agent manifest (cold)', (r) => cell(r.s.manifest));
  row('quicksand-agent scan (warm, unchanged)', (r) => cell(r.s.warm));
  row('quicksand-agent scan (1% touched)', (r) => cell(r.s.touched));
  if (before !== undefined) {
    row('  before: manifest (cold)', (r) => cell(r.s.manifestBefore));
    row('  before: scan (warm, unchanged)', (r) => cell(r.s.warmBefore));
    row('  before: scan (1% touched)', (r) => cell(r.s.touchedBefore));
  }
  row('  peak RSS manifest / scan (MB)', (r) => `${r.s.manifest!.rssMb.toFixed(0)}/${Math.max(r.s.warm!.rssMb, r.s.touched!.rssMb).toFixed(0)}`);
  row('  warm scan µs per path', (r) => ((r.s.warm!.seconds / r.paths) * 1e6).toFixed(1));
  const daemonRow = (label: string, f: (d: DaemonSample) => string): void => row(label, (r) => (r.daemon ? f(r.daemon) : 'not run'));
  daemonRow('daemon (run) idle RSS MB', (d) => d.rss.toFixed(1));
  daemonRow('  of it own (anonymous) MB', (d) => d.anon.toFixed(1));
  daemonRow('  of it file-backed (node binary) MB', (d) => d.file.toFixed(1));
  daemonRow('  with its inotifywait reader: RSS MB', (d) => d.treeRss.toFixed(1));
  daemonRow('    own (anonymous) MB', (d) => d.treeAnon.toFixed(1));
  daemonRow('  inotify watches', (d) => String(d.watches));
  daemonRow('  CPU idle, % of a core', (d) => d.cpu.toFixed(2));
  daemonRow('  peak RSS, daemon + scan child, MB', (d) => d.peakDaemonScan.toFixed(0));
  daemonRow('    as PSS (shared pages once), MB', (d) => d.peakPssDaemonScan.toFixed(0));
  daemonRow('  peak RSS with every child (reader too), MB', (d) => d.peakWithChildren.toFixed(0));
  daemonRow('  start to first full scan reported', (d) => `${d.startupScan.toFixed(1)} s`);
  out.push('');
  const base = results[0]!;
  const targets: Array<[string, string, string, boolean | undefined]> = [];
  const ratio = (a: Summary | undefined, b: number | undefined): number | undefined => (a && b ? a.seconds / b : undefined);
  for (const r of results) {
    const big = r.paths >= 50_000;
    const warmVsFind = ratio(r.s.warm, r.s.find?.seconds);
    if (big) targets.push([`${r.name}: warm scan / stat floor`, `${warmVsFind?.toFixed(2)}x`, '<= 2x', warmVsFind! <= 2]);
    // Not a target: how far the floor of any walk in Node already is from find's.
    const nodeVsFind = ratio(r.s.nodeWalk, r.s.find?.seconds);
    if (big) targets.push([`${r.name}:   (node readdir+lstat alone / stat floor)`, `${nodeVsFind?.toFixed(2)}x`, '', undefined]);
    // The AIDE goals are set for the big trees and the minbase (from a fresh process, start-up in).
    if (r.s.aideCheck && (big || r.name === '6k')) {
      const x = r.s.aideCheck.seconds / r.s.warm!.seconds;
      const goal = big ? 20 : 5;
      targets.push([`${r.name}: warm scan faster than aide --check`, `${x.toFixed(1)}x`, `>= ${goal}x`, x >= goal]);
      const c = r.s.manifest!.seconds / r.s.aideInit!.seconds;
      const cg = big ? 0.2 : 0.6;
      targets.push([`${r.name}: cold manifest / aide --init`, c.toFixed(2), `<= ${cg}`, c <= cg]);
      // Not a target: where the leanest walk-and-hash in Node already stands against the same goal.
      const floor = Math.min(r.s.nodeCold1!.seconds, r.s.nodeCold!.seconds) / r.s.aideInit!.seconds;
      targets.push([`${r.name}:   (node walk + sha256, faster of the two, / aide --init)`, floor.toFixed(2), '', undefined]);
    }
    if (r.bytes > 1024 ** 3) {
      const b = r.s.manifest!.seconds / r.bound;
      targets.push([`${r.name}: cold manifest / hashing bound`, `${b.toFixed(2)}x`, '<= 1.5x', b <= 1.5]);
    }
    const t = r.s.touched!.seconds / r.s.warm!.seconds;
    targets.push([`${r.name}: 1% touched / warm scan`, `${t.toFixed(2)}x`, '<= 1.5x', t <= 1.5]);
    if (r.paths >= 500_000) {
      const peak = Math.max(r.s.manifest!.rssMb, r.s.warm!.rssMb, r.s.touched!.rssMb);
      targets.push([`${r.name}: peak RSS of manifest and scan`, `${peak.toFixed(0)} MB`, '<= 150 MB', peak <= 150]);
    }
    const d = r.daemon;
    if (d === undefined) continue;
    if (r.paths >= 500_000) {
      targets.push([`${r.name}: peak RSS daemon + scan child`, `${d.peakDaemonScan.toFixed(0)} MB`, '<= 150 MB', d.peakDaemonScan <= 150]);
      targets.push([`${r.name}:   (the same with its reader)`, `${d.peakWithChildren.toFixed(0)} MB`, '<= 150 MB', d.peakWithChildren <= 150]);
    }
    // The daemon alone, and with the inotifywait child that holds its watches.
    const idle: Array<[string, number, number, number | undefined, number | undefined]> = [
      ['idle daemon', d.rss, d.anon, base.daemon?.rss, base.daemon?.anon],
      ['  with its reader', d.treeRss, d.treeAnon, base.daemon?.treeRss, base.daemon?.treeAnon],
    ];
    for (const [label, rss, anon, baseRss, baseAnon] of idle) {
      targets.push([`${r.name}: ${label}: RSS`, `${rss.toFixed(1)} MB`, '<= 60 MB', rss <= 60]);
      targets.push([`${r.name}: ${label}: own memory`, `${anon.toFixed(1)} MB`, '<= 24 MB', anon <= 24]);
      if (r === base || baseRss === undefined || baseAnon === undefined) continue;
      targets.push([`${r.name}: ${label}: RSS / ${base.name}'s`, `${(rss / baseRss).toFixed(2)}x`, '<= 1.10x', rss / baseRss <= 1.1]);
      targets.push([`${r.name}: ${label}: own memory / ${base.name}'s`, `${(anon / baseAnon).toFixed(2)}x`, '<= 1.10x', anon / baseAnon <= 1.1]);
    }
    targets.push([`${r.name}: idle daemon CPU`, `${d.cpu.toFixed(2)}%`, '< 0.5%', d.cpu < 0.5]);
  }
  out.push(`${pad('target', 50)}${lpad('measured', 12)}   ${pad('goal', 10)} verdict`);
  for (const [label, measured, goal, ok] of targets) out.push(`${pad(label, 50)}${lpad(measured, 12)}   ${pad(goal, 10)} ${ok === undefined ? (goal === '' ? '' : 'not measured') : ok ? 'holds' : 'MISSED'}`);
  return out.join('\n');
}

async function main(): Promise<void> {
  const values = benchArgs(
    'bench:scan',
    `
  --runs N           runs of each row, medians quoted (default 3)
  --trees LIST       6k, 106k, 1m and 2g (the bytes-heavy tree), comma-separated (default 6k,106k,1m)
  --aide-max PATHS   leave AIDE out on trees larger than this (default 200000; 0: never run it)
  --no-daemon        leave out the real daemon's rows (idle memory, CPU, peak with its scan child)
QUICKSAND_AGENT_BEFORE=old/dist/agent/main.js adds "before" rows of another build.`,
    { runs: { type: 'string', default: '3' }, trees: { type: 'string', default: '6k,106k,1m' }, 'aide-max': { type: 'string', default: '200000' }, 'no-daemon': { type: 'boolean' } },
  );
  const runs = Math.max(1, Number(values.runs));
  const aideMax = Number(values['aide-max']);
  if (!existsSync(agent)) throw new Error(`${agent} is missing: run npm run build first (npm run bench:scan does)`);
  mkdirSync(CACHE, { recursive: true });
  const results: TreeResult[] = [];
  const notes: string[] = [];
  for (const name of values.trees.split(',')) {
    process.stderr.write(`preparing the ${name} tree...\n`);
    let copy: { dir: string; remove: () => void } | undefined;
    try {
      let tree: string;
      let expected: number;
      if (name === '6k') {
        copy = copyTree(ensureMinbase());
        tree = copy.dir;
        expected = 6_000;
        await sleep(RACY_WAIT_MS);
      } else if (name === '106k') {
        tree = ensureUsrCopies();
        expected = 106_000;
      } else if (name === '1m') {
        tree = ensureSynthetic(1_000_000);
        expected = 1_000_000;
      } else if (name === '2g') {
        tree = ensureBytesHeavy();
        expected = 1_000;
      } else throw new Error(`--trees: unknown tree ${name} (6k, 106k, 1m or 2g)`);
      const withAide = expected <= aideMax;
      // aide --check at 1M paths takes minutes a round: past --aide-max it is left out, and said so.
      if (!withAide) notes.push(`${name}: aide not run (more than --aide-max ${aideMax} paths; its --check takes minutes there)`);
      // 1M paths: at most 2 rounds, a round takes about two minutes.
      results.push(await measureTree(name, tree, expected >= 500_000 ? Math.min(runs, 2) : runs, withAide, !values['no-daemon']));
    } finally {
      copy?.remove();
    }
  }
  const r0 = results[0]!;
  process.stdout.write(`bench:scan — ${cores} cores; sha256 ${(r0.rate / 1e6).toFixed(0)} MB/s per core; times are medians of interleaved rounds, RSS the peak\n`);
  process.stdout.write(`trees: 6k = debootstrap minbase; 106k = debootstrap + languages + six copies of its /usr under /opt; 1m = 1,000,000 small files, 100 per folder; 2g = ~2 GiB in files of 4 KiB..64 MiB\n`);
  process.stdout.write(`stat floor: find over the same tracked paths (it also walks the few ignored folders the agent skips)\n`);
  if (before !== undefined) process.stdout.write(`before: ${before} (QUICKSAND_AGENT_BEFORE), in the same rounds\n`);
  for (const n of notes) process.stdout.write(`note: ${n}\n`);
  process.stdout.write(`\n${table(results)}\n`);
}

/** AIDE with the rule set the agent applies: sha256, permissions, owner, size, inode, link target, type. */
await main();
