// npm run bench:floor — the floors under the agent's targets (issue 18), on one tree, side by
// side in one run, medians of interleaved rounds: what a C walker, the leanest Node walks and
// sha256 of every byte cost, next to the agent's own cold manifest and warm scan; and what an
// idle Node process weighs before the daemon holds anything of its own.
//
//   npm run bench:floor [-- --tree 6k|106k|1m] [-- --runs N] [-- --no-daemon] [-- --no-agent]
//
// Rows (every walk is a fresh process, start-up in, like the agent's scan):
// - find -printf: a C walker that lstats every path (the stat floor of bench:scan);
// - node, 1 thread: readdirSync(withFileTypes) + lstatSync of every path, nothing else;
// - node, 2 threads: the same in 2 worker threads over disjoint subtrees (the main thread only
//   hands out subtree roots), and the same again where each path's name and stat go back to
//   the main thread in batches (a scan must compare them there, in walk order);
// - sha256 of every regular file's bytes: OpenSSL (`openssl dgst`, one process per core) and
//   Node's crypto in one worker thread per core, reads in: the hashing bound of the tree;
// - idle RSS (VmRSS / RssAnon / RssFile from /proc/PID/status): a bare node, a node with the
//   daemon's V8 flags and its modules loaded (ws, better-sqlite3 with a database open, the
//   import graph of `quicksand-agent run`), and the real daemon watching the tree.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_TRACKED } from '../shared/policy.js';
import { measureDaemon, measureIdleNode } from './daemon.js';
import type { DaemonSample } from './daemon.js';
import { NODE_LEANEST_WALK, RACY_WAIT_MS, benchArgs, cores, lpad, pad, sha256Rate, summarise, timed } from './measure.js';
import type { Run, Summary } from './measure.js';
import { CACHE, ensureNamedTree } from './trees.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const agent = process.env.QUICKSAND_AGENT ?? path.join(repo, 'dist/agent/main.js');


// The same walk in worker threads. The main thread lists the top folders breadth first until it
// has 32 subtrees per thread, then hands them out one at a time to whichever thread asks (the
// subtrees are disjoint and differ in size). With argv[3] = 'report', each thread sends every
// path's name and stat (ino, size, mtime, ctime, mode) back in batches of 1,024, names joined
// in one string and numbers in a transferred Float64Array, and the main thread reads them all:
// what a scan would have to do to compare in one place.
const WALK_THREADS = `const fs = require('node:fs');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const FIELDS = 5, BATCH = 1024;
if (isMainThread) {
  const threads = Number(process.argv[2]);
  const report = process.argv[3] === 'report';
  const tops = process.argv.slice(4);
  let n = 0, checksum = 0;
  const queue = [];
  for (const t of tops) { n++; if (fs.lstatSync(t).isDirectory()) queue.push(t); }
  while (queue.length > 0 && queue.length < threads * 32) {
    const dir = queue.shift();
    for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = dir + '/' + d.name;
      fs.lstatSync(p);
      n++;
      if (d.isDirectory()) queue.push(p);
    }
  }
  let running = threads;
  for (let i = 0; i < threads; i++) {
    const w = new Worker(__filename, { workerData: { report } });
    w.on('message', (m) => {
      if (m.next) return void w.postMessage(queue.length > 0 ? queue.shift() : null);
      if (m.names !== undefined) {
        const names = m.names.split('\\0');
        const nums = new Float64Array(m.nums);
        for (let j = 0; j < names.length; j++) checksum += names[j].length + nums[j * FIELDS + 1];
        return;
      }
      n += m.count;
      if (--running === 0) { if (n === 0) process.exit(1); process.stdout.write(String(n) + (report ? ' ' + checksum : '') + '\\n'); }
    });
  }
} else {
  const { report } = workerData;
  let count = 0, names = [], nums = new Float64Array(BATCH * FIELDS);
  const flush = () => {
    if (names.length === 0) return;
    parentPort.postMessage({ names: names.join('\\0'), nums: nums.buffer }, [nums.buffer]);
    names = []; nums = new Float64Array(BATCH * FIELDS);
  };
  const walk = (dir) => {
    for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = dir + '/' + d.name;
      const st = fs.lstatSync(p);
      count++;
      if (report) {
        const at = names.length * FIELDS;
        nums[at] = st.ino; nums[at + 1] = st.size; nums[at + 2] = st.mtimeMs; nums[at + 3] = st.ctimeMs; nums[at + 4] = st.mode;
        names.push(p);
        if (names.length === BATCH) flush();
      }
      if (d.isDirectory()) walk(p);
    }
  };
  parentPort.on('message', (root) => {
    if (root === null) { flush(); parentPort.postMessage({ count }); parentPort.close(); return; }
    walk(root);
    parentPort.postMessage({ next: true });
  });
  parentPort.postMessage({ next: true });
}`;

// sha256 of every file a list names (NUL-separated), in one worker thread per core, each taking
// every cores-th file: Node's crypto (OpenSSL underneath), reads in.
const HASH_THREADS = `const fs = require('node:fs');
const crypto = require('node:crypto');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
if (isMainThread) {
  const threads = Number(process.argv[2]);
  let done = 0, bytes = 0;
  for (let i = 0; i < threads; i++) {
    new Worker(__filename, { workerData: { list: process.argv[3], i, threads } }).on('message', (b) => {
      bytes += b;
      if (++done === threads) process.stdout.write(String(bytes) + '\\n');
    });
  }
} else {
  const { list, i, threads } = workerData;
  const files = fs.readFileSync(list, 'utf8').split('\\0').filter(Boolean);
  let bytes = 0;
  const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
  for (let k = i; k < files.length; k += threads) {
    const fd = fs.openSync(files[k], 'r');
    const h = crypto.createHash('sha256');
    for (let r; (r = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) { h.update(buf.subarray(0, r)); bytes += r; }
    fs.closeSync(fd);
    h.digest();
  }
  parentPort.postMessage(bytes);
}`;

// What the daemon loads before it holds anything of the tree: its modules and native libraries.
const LOAD_DAEMON = (dist: string): string => {
  const url = (file: string): string => JSON.stringify(pathToFileURL(path.join(dist, file)).href);
  return `import { createRequire } from 'node:module';
const require = createRequire(${url('agent/main.js')});
const Database = require('better-sqlite3');
const { WebSocket } = require('ws');
const db = new Database(':memory:');
db.prepare('CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB)').run();
await import(${url('agent/commands/run.js')});
await import(${url('agent/daemon/monitor.js')});
globalThis.keep = [db, WebSocket];
// The daemon compacts its heap once idle (daemon/compact.ts): so does this, for a like comparison.
globalThis.gc?.();
`;
};

interface Idle {
  label: string;
  d: DaemonSample;
}

async function main(): Promise<void> {
  const values = benchArgs(
    'bench:floor',
    `
  --tree NAME        6k, 106k or 1m (default 106k)
  --runs N           interleaved rounds, medians quoted (default 3)
  --no-daemon        leave out the idle-memory rows
  --no-agent         leave out the agent's own cold manifest and warm scan rows`,
    { tree: { type: 'string', default: '106k' }, runs: { type: 'string', default: '3' }, 'no-daemon': { type: 'boolean' }, 'no-agent': { type: 'boolean' } },
  );
  const runs = Math.max(1, Number(values.runs));
  if (!values['no-agent'] && !existsSync(agent)) throw new Error(`${agent} is missing: run npm run build first`);
  process.stderr.write(`preparing the ${values.tree} tree...\n`);
  const tree = ensureNamedTree(values.tree);
  const work = mkdtempSync(path.join(CACHE, 'bench-floor-'));
  try {
    await sleep(RACY_WAIT_MS);
    const tracked = DEFAULT_TRACKED.filter((t) => existsSync(tree.dir + t)).map((t) => tree.dir + t);
    const quoted = tracked.map((t) => `'${t}'`).join(' ');
    const list = path.join(work, 'files.list');
    execFileSync('sh', ['-c', `find ${quoted} -type f -print0 > '${list}'`]);
    const progs = { walk1: path.join(work, 'walk1.cjs'), walkN: path.join(work, 'walkn.cjs'), hashN: path.join(work, 'hashn.cjs'), load: path.join(work, 'load.mjs') };
    writeFileSync(progs.walk1, NODE_LEANEST_WALK);
    writeFileSync(progs.walkN, WALK_THREADS);
    writeFileSync(progs.hashN, HASH_THREADS);
    writeFileSync(progs.load, LOAD_DAEMON(path.dirname(path.dirname(agent))));
    const manifest = path.join(work, 'manifest.json.gz');
    const state = path.join(work, 'state');
    const jobs: Record<string, () => Run> = {
      find: () => timed([`find ${quoted} -printf '%i %s %T@ %C@ %m\\n' > /dev/null`], { shell: true }),
      nodeStart: () => timed(['node', '-e', '0']),
      walk1: () => timed(['node', progs.walk1, ...tracked]),
      walk2: () => timed(['node', progs.walkN, '2', 'count', ...tracked]),
      walk2report: () => timed(['node', progs.walkN, '2', 'report', ...tracked]),
      openssl: () => timed([`xargs -0 -P ${cores} -n 500 openssl dgst -sha256 < '${list}' > /dev/null`], { shell: true }),
      nodeHash: () => timed(['node', progs.hashN, String(cores), list]),
    };
    if (!values['no-agent']) {
      jobs.manifest = () => {
        rmSync(state, { recursive: true, force: true });
        return timed(['node', agent, 'manifest', '--root', tree.dir, '--out', manifest, '--state', state, '--quiet']);
      };
      jobs.warm = () => timed(['node', agent, 'scan', '--root', tree.dir, '--manifest', manifest, '--state', state, '--quiet']);
    }
    const results: Record<string, Run[]> = Object.fromEntries(Object.keys(jobs).map((k) => [k, []]));
    for (let round = 0; round < runs; round++) {
      process.stderr.write(`${values.tree}: round ${round + 1}/${runs}\n`);
      for (const [k, job] of Object.entries(jobs)) results[k]!.push(job());
    }
    const s = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, summarise(k, v)])) as Record<string, Summary>;
    const paths = Number(execFileSync('sh', ['-c', `find ${quoted} | wc -l`], { encoding: 'utf8' }).trim());
    const bytes = Number(execFileSync('sh', ['-c', `xargs -0 stat -c %s < '${list}' | awk '{s+=$1} END {printf "%d", s}'`], { encoding: 'utf8', maxBuffer: 1024 ** 3 }).trim());
    const rate = sha256Rate();

    process.stderr.write('idle processes...\n');
    // The flags main.ts sets for `run` (there at run time, here on the command line: the same heap).
    const daemonFlags = ['--no-opt', '--no-maglev', '--no-sparkplug', '--semi-space-growth-factor=1', '--max-semi-space-size=1'];
    const idle: Idle[] = [
      { label: 'bare node', d: await measureIdleNode([]) },
      { label: 'node, daemon V8 flags', d: await measureIdleNode(daemonFlags) },
      { label: 'node + daemon modules', d: await measureIdleNode([...daemonFlags, '--expose-gc', '--import', pathToFileURL(progs.load).href]) },
    ];
    if (!values['no-daemon'] && !values['no-agent']) {
      process.stderr.write('the daemon...\n');
      idle.push({ label: `daemon (run), ${values.tree}`, d: await measureDaemon({ agent, repo, tree: tree.dir, manifestFile: manifest, work }) });
    }

    const out: string[] = [];
    out.push(`bench:floor — ${values.tree} tree: ${paths} paths under ${DEFAULT_TRACKED.filter((t) => existsSync(tree.dir + t)).join(' ')}, ${(bytes / 1024 ** 2).toFixed(0)} MiB in regular files; ${cores} cores; medians of ${runs} interleaved rounds`);
    out.push('');
    out.push(`${pad('', 52)}${lpad('time', 10)}${lpad('/ find', 9)}${lpad('µs/path', 9)}${lpad('peak RSS', 10)}`);
    const row = (label: string, r: Summary | undefined, floor = s.find!.seconds): void => {
      if (r === undefined) return;
      out.push(`${pad(label, 52)}${lpad(`${r.seconds.toFixed(2)} s`, 10)}${lpad(`${(r.seconds / floor).toFixed(2)}x`, 9)}${lpad(((r.seconds / paths) * 1e6).toFixed(1), 9)}${lpad(`${r.rssMb.toFixed(0)} MB`, 10)}`);
    };
    row('find -printf (stat floor)', s.find);
    row('node -e 0 (start-up alone)', s.nodeStart);
    row('node, 1 thread: readdir + lstat every path', s.walk1);
    row('node, 2 threads: the same over disjoint subtrees', s.walk2);
    row('node, 2 threads + names/stats to main thread', s.walk2report);
    row('quicksand-agent scan (warm, unchanged)', s.warm);
    out.push('');
    const bound = bytes / (rate * cores);
    out.push(`${pad('', 52)}${lpad('time', 10)}${lpad('/ bound', 9)}${lpad('MB/s', 9)}${lpad('peak RSS', 10)}`);
    const hrow = (label: string, seconds: number, rss?: number): void =>
      void out.push(`${pad(label, 52)}${lpad(`${seconds.toFixed(2)} s`, 10)}${lpad(`${(seconds / bound).toFixed(2)}x`, 9)}${lpad((bytes / seconds / 1e6).toFixed(0), 9)}${lpad(rss === undefined ? '' : `${rss.toFixed(0)} MB`, 10)}`);
    hrow(`hashing bound: bytes / (sha256 ${(rate / 1e6).toFixed(0)} MB/s x ${cores})`, bound);
    hrow(`openssl dgst -sha256, ${cores} processes, reads in`, s.openssl!.seconds, s.openssl!.rssMb);
    hrow(`node crypto, ${cores} worker threads, reads in`, s.nodeHash!.seconds, s.nodeHash!.rssMb);
    if (s.manifest) hrow('quicksand-agent manifest (cold)', s.manifest.seconds, s.manifest.rssMb);
    out.push('');
    out.push(`${pad('idle, MB (median of samples)', 40)}${lpad('RSS', 9)}${lpad('own/anon', 10)}${lpad('file', 9)}${lpad('+children', 11)}${lpad('CPU %', 8)}`);
    for (const { label, d } of idle) out.push(`${pad(label, 40)}${lpad(d.rss.toFixed(1), 9)}${lpad(d.anon.toFixed(1), 10)}${lpad(d.file.toFixed(1), 9)}${lpad(d.treeRss.toFixed(1), 11)}${lpad(d.cpu.toFixed(2), 8)}`);
    out.push('');
    const loaded = idle[2]!.d;
    out.push(`floors: a Node walk of this tree is ${(s.walk1!.seconds / s.find!.seconds).toFixed(2)}x find with 1 thread and ${(s.walk2!.seconds / s.find!.seconds).toFixed(2)}x with 2 (${(s.walk2report!.seconds / s.find!.seconds).toFixed(2)}x handing every path to one thread);`);
    out.push(`        node with the daemon's modules idles at ${loaded.rss.toFixed(1)} MB RSS (${loaded.file.toFixed(1)} MB of it file-backed), before the daemon holds anything`);
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
    tree.remove();
  }
}

await main();
