// bench:containers — reading 200 containers of one image from the host's disk, side by side:
// a small drift per container on the image, the same drift on an image about twice the size, and
// a bigger drift (ten files more, five image files changed) on the first image. Time and bytes read must follow the drift, not the
// image. Each container is a real overlay mount (half Docker overlay2, half Podman layout) changed
// through its merged view, then unmounted; the scans never mount anything.
//
// "first": the first scan of the host (the image's layers' overlay attributes and its package
// databases are read once, then every container); "next": a later scan in a new process, with
// the layers' attributes from the state folder (what each further `scan --containers` costs).
// "full-read": a later scan told to read the image layers in full (--image-check-hours 0), what
// the scheduled full read (once a day by default) costs; between full reads, a scan checks the
// layers' folders only (docs/container-layouts.md).
// Bytes read are the process's own read(2) bytes (/proc/self/io rchar): every file, database
// and folder it read (extended attributes are read by listxattr/getxattr, not counted).
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { LAYER_CACHE_FILE, scanContainers } from '../agent/containers/scan-containers.js';
import { defaultPolicy } from '../shared/policy.js';
import { CACHE_DIR } from '../test/helpers/debian-root.js';
import { buildContainerHost, ensureImageLayers, overlayMount, scratchDir } from '../test/helpers/container-layers.js';
import { lpad, median, pad } from './measure.js';

const COUNT = Number(process.env.QS_BENCH_CONTAINERS ?? 200);
const RUNS = Number(process.env.QS_BENCH_RUNS ?? 5);
/** A checkout of another version (QS_BENCH_BEFORE=/path/to/it): its scanContainers is measured on the same hosts, in turn with this one. */
const BEFORE = process.env.QS_BENCH_BEFORE;
/** A lock file (QS_BENCH_LOCK): held while the scans are measured, not while the hosts are built. */
const LOCK = process.env.QS_BENCH_LOCK;

type Scan = typeof scanContainers;
interface Impl {
  name: string;
  scan: Scan;
}

/** Holds `file` with flock(1) until the returned function is called. */
async function holdLock(file: string): Promise<() => void> {
  const child = spawn('flock', [file, 'sh', '-c', 'echo held; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`flock exited ${code}`)));
  });
  return () => child.stdin.end();
}

function rchar(): number {
  const m = /^rchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'));
  return Number(m![1]);
}

const BULK = ['bulk1', 'bulk2', 'bulk3'];

/**
 * A bigger image: three more layers, each a copy of the image's /usr/share and shared libraries
 * under /opt (data and code, no package database: the image's packages stay the same).
 */
function ensureBigImage(bottom: string, top: string): string[] {
  const dir = path.join(CACHE_DIR, 'container-image-c1-big2');
  const layers = BULK.map((l) => path.join(dir, l));
  if (!existsSync(dir)) {
    const tmp = `${dir}.tmp-${process.pid}`;
    const below = [top, bottom];
    for (const l of BULK) {
      const m = overlayMount(tmp, below, path.join(tmp, l));
      try {
        mkdirSync(path.join(m.merged, 'opt', l), { recursive: true });
        execFileSync('cp', ['-a', path.join(m.merged, 'usr/share'), path.join(m.merged, `opt/${l}/share`)]);
        execFileSync('cp', ['-a', path.join(m.merged, 'usr/lib/x86_64-linux-gnu'), path.join(m.merged, `opt/${l}/lib`)]);
      } finally {
        m.unmount();
      }
      below.unshift(path.join(tmp, l));
    }
    execFileSync('mv', [tmp, dir]);
  }
  return [bottom, top, ...layers];
}

const treeBytes = (dirs: readonly string[]): number => dirs.reduce((n, d) => n + Number(execFileSync('du', ['-sb', d], { encoding: 'utf8' }).split('\t')[0]), 0);

interface Row {
  label: string;
  imageMb: number;
  driftKb: number;
  cold: number;
  warm: number;
  coldMb: number;
  warmMb: number;
  hashedKb: number;
  full: number;
  fullMb: number;
}

interface Host {
  label: string;
  image: string[];
  root: string;
  state: string;
  driftBytes: number;
  remove: () => void;
}

function buildHost(label: string, image: string[], drift: (i: number, merged: string) => void): Host {
  const scratch = scratchDir();
  const root = path.join(scratch.dir, 'host');
  const containers = buildContainerHost(root, scratch.dir, image, COUNT, drift);
  const state = path.join(scratch.dir, 'state');
  mkdirSync(state, { recursive: true });
  return { label, image, root, state, driftBytes: treeBytes(containers.map((c) => c.upper)), remove: scratch.remove };
}

/** One first scan (no state) and one next scan (the state the first one left) of `host`. */
async function scanTwice(host: Host, scan: Scan): Promise<{ first: number; firstBytes: number; next: number; nextBytes: number; hashed: number; full: number; fullBytes: number }> {
  rmSync(path.join(host.state, LAYER_CACHE_FILE), { force: true });
  rmSync(path.join(host.state, 'container-seals'), { recursive: true, force: true });
  let b0 = rchar();
  let t0 = performance.now();
  const first = await scan(host.root, defaultPolicy(), { stateDir: host.state });
  const firstMs = performance.now() - t0;
  const firstBytes = rchar() - b0;
  if (first.containers.length !== COUNT) throw new Error(`${host.label}: ${first.containers.length} containers reported`);
  b0 = rchar();
  t0 = performance.now();
  const again = await scan(host.root, defaultPolicy(), { stateDir: host.state });
  const nextMs = performance.now() - t0;
  const nextBytes = rchar() - b0;
  // A later scan that reads the image layers in full (what the daily full read costs; a version
  // without the option reads them as its next scan does).
  b0 = rchar();
  t0 = performance.now();
  await scan(host.root, defaultPolicy(), { stateDir: host.state, fullCheckMs: 0 });
  const fullMs = performance.now() - t0;
  return { first: firstMs, firstBytes, next: nextMs, nextBytes, hashed: again.containers.reduce((n, c) => n + (c.stats?.bytesRead ?? 0), 0), full: fullMs, fullBytes: rchar() - b0 };
}

/** The hosts are scanned in turn, run after run, so a busy moment of the machine hits them alike. */
async function measureAll(hosts: Host[], impls: readonly Impl[]): Promise<Row[][]> {
  const runs = impls.map(() => hosts.map(() => [] as Array<Awaited<ReturnType<typeof scanTwice>>>));
  for (let r = 0; r < RUNS; r++) for (const [k, impl] of impls.entries()) for (const [i, h] of hosts.entries()) runs[k]![i]!.push(await scanTwice(h, impl.scan));
  return impls.map((_, k) => hosts.map((h, i) => {
    const rs = runs[k]![i]!;
    return {
      label: h.label,
      imageMb: treeBytes(h.image) / 2 ** 20,
      driftKb: h.driftBytes / 1024,
      cold: median(rs.map((x) => x.first)),
      warm: median(rs.map((x) => x.next)),
      coldMb: median(rs.map((x) => x.firstBytes)) / 2 ** 20,
      warmMb: median(rs.map((x) => x.nextBytes)) / 2 ** 20,
      hashedKb: rs[0]!.hashed / 1024,
      full: median(rs.map((x) => x.full)),
      fullMb: median(rs.map((x) => x.fullBytes)) / 2 ** 20,
    };
  }));
}

const small = (i: number, m: string): void => {
  writeFileSync(path.join(m, `etc/app-${i}.conf`), `replicas=${i}\n`);
  if (i % 20 === 0) writeFileSync(path.join(m, 'usr/local/bin/hotfix'), '#!/bin/sh\n', { mode: 0o755 });
};
const tenfold = (i: number, m: string): void => {
  small(i, m);
  const blob = Buffer.alloc(64 * 1024, i % 251);
  for (let k = 0; k < 9; k++) writeFileSync(path.join(m, `etc/app-${i}-${k}.dat`), blob);
  // Changed image files: the agent reads both copies to compare them.
  for (const f of ['usr/bin/tac', 'usr/bin/head', 'usr/bin/tail', 'usr/bin/sort', 'usr/bin/uniq']) appendFileSync(path.join(m, f), `\n# ${i}\n`);
};

async function main(): Promise<void> {
  const { bottom, top } = ensureImageLayers();
  const big = ensureBigImage(bottom, top);
  console.log(`bench:containers — ${COUNT} containers of one image on one host, median of ${RUNS} runs each, side by side`);
  const hosts = [buildHost('small drift, image 1x', [bottom, top], small), buildHost('small drift, big image', big, small), buildHost('10x drift,  image 1x', [bottom, top], tenfold)];
  const impls: Impl[] = [];
  if (BEFORE !== undefined) {
    const mod = (await import(path.resolve(BEFORE, 'agent/containers/scan-containers.ts'))) as { scanContainers: Scan };
    impls.push({ name: `before (${BEFORE})`, scan: mod.scanContainers });
  }
  impls.push({ name: BEFORE === undefined ? 'this tree' : 'after (this tree)', scan: scanContainers });
  let results: Row[][];
  const release = LOCK === undefined ? () => {} : await holdLock(LOCK);
  try {
    console.log(`measuring (${execFileSync('uptime', { encoding: 'utf8' }).trim()})`);
    results = await measureAll(hosts, impls);
    console.log(`measured  (${execFileSync('uptime', { encoding: 'utf8' }).trim()})`);
  } finally {
    release();
    for (const h of hosts) h.remove();
  }
  for (const [k, impl] of impls.entries()) {
    if (impls.length > 1) console.log(`== ${impl.name}`);
    printRows(results[k]!);
  }
}

function printRows(rows: Row[]): void {
  console.log(
    [pad('scenario', 24), lpad('image MiB', 10), lpad('drift KiB', 10), lpad('first s', 8), lpad('first MiB read', 15), lpad('next s', 8), lpad('next MiB read', 14), lpad('ms/ctr next', 12), lpad('KiB hashed', 11), lpad('full-read s', 12), lpad('MiB', 6)].join(' '),
  );
  for (const r of rows) {
    console.log(
      [
        pad(r.label, 24),
        lpad(r.imageMb.toFixed(0), 10),
        lpad(r.driftKb.toFixed(0), 10),
        lpad((r.cold / 1000).toFixed(2), 8),
        lpad(r.coldMb.toFixed(1), 15),
        lpad((r.warm / 1000).toFixed(2), 8),
        lpad(r.warmMb.toFixed(1), 14),
        lpad((r.warm / COUNT).toFixed(2), 12),
        lpad(r.hashedKb.toFixed(0), 11),
        lpad((r.full / 1000).toFixed(2), 12),
        lpad(r.fullMb.toFixed(1), 6),
      ].join(' '),
    );
  }
  const [a, b, c] = rows as [Row, Row, Row];
  console.log(`image ${(b.imageMb / a.imageMb).toFixed(1)}x (small drift): next scan ${(b.warm / a.warm).toFixed(2)}x time, ${(b.warmMb / a.warmMb).toFixed(2)}x bytes read; first scan ${(b.cold / a.cold).toFixed(2)}x time, ${(b.coldMb / a.coldMb).toFixed(2)}x bytes read`);
  console.log(`drift ${(c.driftKb / a.driftKb).toFixed(0)}x bytes (image 1x): next scan ${(c.warm / a.warm).toFixed(2)}x time, ${(c.warmMb / a.warmMb).toFixed(2)}x bytes read`);
}

await main();
