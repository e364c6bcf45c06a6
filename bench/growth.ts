// npm run bench:growth — how time and peak RSS grow with the file count: synthetic trees of
// 6k, 100k and 1M small files (cached under /var/tmp, built once), each run through a cold
// `manifest`, a warm `scan` and the real daemon (`quicksand-agent run`, enrolled, watching:
// idle RSS, its own memory, the peak with its scan child); then a tree of a few large files (2 GiB), where
// hashing is the whole cost: the cold manifest against aide --init and the pure hashing bound.
//
//   npm run bench:growth [-- --sizes 10000,100000,1000000] [-- --runs N] [-- --generate-only] [-- --bytes-only]
//   npm run bench:growth -- --daemon [--trees 6k,106k,1m]
//
// --daemon measures only the idle daemon, on the real trees bench:scan names (6k = a copy of the
// debootstrap minbase, 106k = it with languages and six copies of /usr, 1m = one million small
// files), beside a bare Node process that does nothing (the floor any Node daemon stands on).
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { measureDaemon, measureIdleNode } from './daemon.js';
import type { DaemonSample } from './daemon.js';
import { benchArgs, cores, lpad, pad, sha256Rate, summarise, timed } from './measure.js';
import type { Run } from './measure.js';
import { CACHE, PER_DIR, ensureBytesTree, ensureNamedTree, ensureSynthetic } from './trees.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// QUICKSAND_AGENT: another build of the agent to measure (default: this checkout's dist/).
const agent = process.env.QUICKSAND_AGENT ?? path.join(repo, 'dist/agent/main.js');
/** Cold manifest against aide --init and the pure hashing bound on a tree where hashing is the whole cost. */
function bytesRun(dir: string, files: number, mib: number, runs: number): string {
  const work = path.join(CACHE, `bytes-work-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work);
  try {
    const conf = path.join(work, 'aide.conf');
    writeFileSync(conf, [`database_out=file:${work}/aide.db.new`, 'gzip_dbout=no', `root_prefix=${dir}`, 'report_url=stdout', 'Q = sha256+p+u+g+s+i+l+ftype', '/usr Q', '/etc Q', ''].join('\n'));
    const cold: Run[] = [];
    const aide: Run[] = [];
    for (let r = 0; r < runs; r++) {
      process.stderr.write(`bytes-heavy tree, round ${r + 1}/${runs}\n`);
      rmSync(path.join(work, 'state'), { recursive: true, force: true });
      cold.push(timed(['node', agent, 'manifest', '--root', dir, '--out', path.join(work, 'm.json.gz'), '--state', path.join(work, 'state'), '--quiet']));
      aide.push(timed(['aide', `--config=${conf}`, '--init']));
    }
    const bytes = files * mib * 1024 * 1024;
    const rate = sha256Rate();
    const bound = bytes / (rate * cores);
    const c = summarise('manifest', cold);
    const a = summarise('aide', aide);
    return [
      `bytes-heavy tree: ${files} files x ${mib} MiB = ${((files * mib) / 1024).toFixed(1)} GiB; sha256 ${(rate / 1e6).toFixed(0)} MB/s per core x ${cores} cores`,
      `${pad('quicksand-agent manifest (cold)', 34)}${lpad(c.seconds.toFixed(2), 8)} s ${lpad(c.rssMb.toFixed(0), 6)} MB`,
      `${pad('aide --init', 34)}${lpad(a.seconds.toFixed(2), 8)} s ${lpad(a.rssMb.toFixed(0), 6)} MB`,
      `${pad('hashing bound', 34)}${lpad(bound.toFixed(2), 8)} s`,
      `cold manifest / aide --init: ${(c.seconds / a.seconds).toFixed(2)} (goal <= 1); cold manifest / hashing bound: ${(c.seconds / bound).toFixed(2)}x (goal <= 1.5x)`,
    ].join('\n');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The idle daemon on each named tree, against the bare-Node floor, with the issue's targets. */
async function daemonRun(names: string[]): Promise<string> {
  const rows: Array<{ name: string; d: DaemonSample }> = [];
  for (const name of names) {
    process.stderr.write(`${name}: preparing the tree\n`);
    const tree = ensureNamedTree(name);
    const work = path.join(CACHE, `growth-daemon-${process.pid}`);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work);
    try {
      const manifest = path.join(work, 'm.json.gz');
      process.stderr.write(`${name}: its manifest\n`);
      timed(['node', agent, 'manifest', '--root', tree.dir, '--out', manifest, '--state', path.join(work, 'state'), '--quiet']);
      process.stderr.write(`${name}: the daemon\n`);
      rows.push({ name, d: await measureDaemon({ agent, repo, tree: tree.dir, manifestFile: manifest, work }) });
    } finally {
      rmSync(work, { recursive: true, force: true });
      tree.remove();
    }
  }
  const bare = await measureIdleNode([]);
  const bareDaemonFlags = await measureIdleNode(['--no-opt', '--no-maglev', '--no-sparkplug']);
  const col = (xs: string[]): string => xs.map((x) => lpad(x, 12)).join('');
  const out: string[] = [`${pad('idle, MB (median of samples)', 40)}${col(['bare node', 'bare -noopt', ...rows.map((r) => r.name)])}`];
  const row = (label: string, floor: (d: DaemonSample) => string, f: (d: DaemonSample) => string): void =>
    void out.push(`${pad(label, 40)}${col([floor(bare), floor(bareDaemonFlags), ...rows.map((r) => f(r.d))])}`);
  row('RSS', (d) => d.rss.toFixed(1), (d) => d.rss.toFixed(1));
  row('  own (anonymous)', (d) => d.anon.toFixed(1), (d) => d.anon.toFixed(1));
  row('  PSS (shared pages split)', (d) => d.pss.toFixed(1), (d) => d.pss.toFixed(1));
  row('  file-backed (node binary, libraries)', (d) => d.file.toFixed(1), (d) => d.file.toFixed(1));
  row('RSS of the daemon and its children', (d) => d.treeRss.toFixed(1), (d) => d.treeRss.toFixed(1));
  row('  own (anonymous), with children', (d) => d.treeAnon.toFixed(1), (d) => d.treeAnon.toFixed(1));
  row('inotify watches', () => '', (d) => String(d.watches));
  row('CPU idle, % of a core', (d) => d.cpu.toFixed(2), (d) => d.cpu.toFixed(2));
  row('peak RSS with scan child', () => '', (d) => d.peakWithChildren.toFixed(0));
  row('  as PSS (shared pages once)', () => '', (d) => d.peakPssWithChildren.toFixed(0));
  row('  of it the daemon itself (RSS)', () => '', (d) => d.peakDaemon.toFixed(0));
  row('peak RSS, daemon + scan child', () => '', (d) => d.peakDaemonScan.toFixed(1));
  row('  as PSS', () => '', (d) => d.peakPssDaemonScan.toFixed(1));
  row('start to first full scan reported, s', () => '', (d) => d.startupScan.toFixed(1));
  out.push('', `${pad('each process, MB', 40)}${col(['peak RSS', 'its anon', 'peak PSS', 'idle RSS', 'idle PSS'])}`);
  for (const { name, d } of rows) {
    for (const p of d.processes) out.push(`${pad(`${name} ${p.role}`, 40)}${col([p.peakRss, p.peakAnon, p.peakPss, p.idleRss, p.idlePss].map((x) => x.toFixed(1)))}`);
  }
  out.push('');
  const base = rows[0]!;
  const verdict = (ok: boolean): string => (ok ? 'holds' : 'MISSED');
  for (const { name, d } of rows) {
    const flat = d.treeRss / base.d.treeRss;
    const flatOwn = d.treeAnon / base.d.treeAnon;
    out.push(
      `${name}: RSS ${d.treeRss.toFixed(1)} MB (<= 60: ${verdict(d.treeRss <= 60)}); own ${d.treeAnon.toFixed(1)} MB (<= 24: ${verdict(d.treeAnon <= 24)}); ` +
        `/ ${base.name}: RSS ${flat.toFixed(2)}x own ${flatOwn.toFixed(2)}x (<= 1.10x: ${verdict(flat <= 1.1 && flatOwn <= 1.1)}); ` +
        `CPU ${d.cpu.toFixed(2)}% (< 0.5%: ${verdict(d.cpu < 0.5)})${name === '1m' ? `; peak of the daemon and its scan child ${d.peakDaemonScan.toFixed(1)} MB (<= 150: ${verdict(d.peakDaemonScan <= 150)}; as PSS ${d.peakPssDaemonScan.toFixed(1)} MB; with the reader ${d.peakWithChildren.toFixed(0)} MB)` : ''}`,
    );
  }
  out.push(`floor: a bare node process idles at ${bare.rss.toFixed(1)} MB RSS, ${bare.anon.toFixed(1)} MB own (with the daemon's V8 flags: ${bareDaemonFlags.rss.toFixed(1)} / ${bareDaemonFlags.anon.toFixed(1)})`);
  return out.join('\n');
}

async function main(): Promise<void> {
  const values = benchArgs(
    'bench:growth',
    `
  --sizes LIST       synthetic trees by file count, comma-separated (default 6000,100000,1000000)
  --runs N           runs of each row, medians quoted (default 3)
  --generate-only    build (and cache) the trees, measure nothing
  --bytes-only       only the bytes-heavy tree (2 GiB): cold manifest against aide --init and the hashing bound
  --daemon           only the idle daemon, on the real trees of --trees (6k,106k,1m)`,
    {
      sizes: { type: 'string', default: '6000,100000,1000000' },
      runs: { type: 'string', default: '3' },
      'generate-only': { type: 'boolean' },
      'bytes-only': { type: 'boolean' },
      daemon: { type: 'boolean' },
      trees: { type: 'string', default: '6k,106k,1m' },
    },
  );
  if (values.daemon) {
    if (!existsSync(agent)) throw new Error(`${agent} is missing: run npm run build first (npm run bench:growth does)`);
    process.stdout.write(`growth: the idle daemon (quicksand-agent run, enrolled, connected, watching) after its start-up full scan\n${await daemonRun(values.trees.split(','))}\n`);
    return;
  }
  const sizes = values.sizes.split(',').map(Number);
  const runs = Math.max(1, Number(values.runs));
  mkdirSync(CACHE, { recursive: true });
  const bytesTree = { files: 64, mib: 32 };
  const big = ensureBytesTree(bytesTree.files, bytesTree.mib);
  const trees = values['bytes-only']
    ? []
    : sizes.map((n) => {
        process.stderr.write(`tree of ${n} files...\n`);
        return { n, dir: ensureSynthetic(n) };
      });
  if (values['generate-only']) return;
  if (!existsSync(agent)) throw new Error(`${agent} is missing: run npm run build first (npm run bench:growth does)`);
  await sleep(2100); // a tree built just now would still be inside the racy window

  const rows: string[] = [];
  rows.push(
    `${pad('files', 10)}${lpad('manifest s', 12)}${lpad('RSS MB', 9)}${lpad('µs/file', 9)}${lpad('warm scan s', 13)}${lpad('RSS MB', 9)}${lpad('µs/file', 9)}${lpad('find s', 9)}${lpad('scan/find', 11)}${lpad('daemon RSS', 12)}${lpad('own', 7)}${lpad('peak+child', 12)}`,
  );
  const daemons: number[] = [];
  for (const { n, dir } of trees) {
    const work = path.join(CACHE, `growth-work-${process.pid}`);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work);
    const manifest = path.join(work, 'm.json.gz');
    const state = path.join(work, 'state');
    const cold: Run[] = [];
    const warm: Run[] = [];
    const find: Run[] = [];
    let daemon;
    try {
      for (let r = 0; r < runs; r++) {
        process.stderr.write(`${n} files, round ${r + 1}/${runs}\n`);
        find.push(timed([`find '${dir}/usr' '${dir}/etc' -printf '%i %s %T@ %C@ %m\\n' > /dev/null`], { shell: true }));
        rmSync(state, { recursive: true, force: true });
        cold.push(timed(['node', agent, 'manifest', '--root', dir, '--out', manifest, '--state', state, '--quiet']));
        warm.push(timed(['node', agent, 'scan', '--root', dir, '--manifest', manifest, '--state', state, '--quiet']));
      }
      daemon = await measureDaemon({ agent, repo, tree: dir, manifestFile: manifest, work });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    const c = summarise('manifest', cold);
    const w = summarise('scan', warm);
    const f = summarise('find', find);
    daemons.push(daemon.rss);
    rows.push(
      `${pad(String(n), 10)}${lpad(c.seconds.toFixed(2), 12)}${lpad(c.rssMb.toFixed(0), 9)}${lpad(((c.seconds / n) * 1e6).toFixed(1), 9)}${lpad(w.seconds.toFixed(2), 13)}${lpad(w.rssMb.toFixed(0), 9)}${lpad(((w.seconds / n) * 1e6).toFixed(1), 9)}${lpad(f.seconds.toFixed(2), 9)}${lpad(`${(w.seconds / f.seconds).toFixed(1)}x`, 11)}${lpad(daemon.rss.toFixed(1), 12)}${lpad(daemon.anon.toFixed(1), 7)}${lpad(daemon.peakWithChildren.toFixed(0), 12)}`,
    );
  }
  if (trees.length > 0) {
    const flat = daemons.length > 1 ? Math.max(...daemons) / Math.min(...daemons) : 1;
    rows.push(`idle daemon RSS, largest / smallest tree: ${flat.toFixed(2)}x (goal <= 1.10x: ${flat <= 1.1 ? 'holds' : 'MISSED'}); daemon figures in MB, "own" is anonymous memory (goal <= 24)`);
    process.stdout.write(`growth: synthetic trees (small files, ${PER_DIR} per folder); median of ${runs} runs, peak RSS over them\n${rows.join('\n')}\n\n`);
  }
  process.stdout.write(`${bytesRun(big, bytesTree.files, bytesTree.mib, runs)}\n`);
}

await main();
