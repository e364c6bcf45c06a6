// `--threads N` bounds how many threads a walking command hashes and walks on: each thread holds
// an isolate and allocator arenas of its own, so on a large tree it is what the scan child of the
// daemon costs. Parsed at the edge with an error that says what to pass, and then really held by
// both pools: the hashing pool (a tree of big files would start one thread per core) and the
// walk threads (a warm scan of a tree remembered clean).
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_THREADS, parseThreads, walkOptions } from '../agent/commands/common.js';
import type { CliIo } from '../agent/commands/common.js';
import { scanRoot } from '../agent/diff/scan.js';
import { hashPoolFor, startHashingEarly } from '../agent/fingerprint/hash-pool.js';
import type { WalkStats } from '../agent/fingerprint/walk.js';
import { readManifestFile } from '../agent/manifest/io.js';
import { openRoot } from '../agent/root.js';
import { hasStackTrace, runAgent } from './helpers/cli.js';
import { warmScan } from './helpers/warm-scan.js';

const io: CliIo = { stdout: () => undefined, stderr: () => undefined, interactive: false };
let dir: string;
let big: string;
let small: string;
let bigManifest: string;
let smallManifest: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'qs-threads-'));
  // Six files of 48 MiB (sparse: no disk, still 48 MiB to read and hash each): two of them are
  // more than one thread takes on before the pool starts another.
  big = path.join(dir, 'big');
  mkdirSync(path.join(big, 'usr/share/blobs'), { recursive: true });
  mkdirSync(path.join(big, 'etc'));
  for (let i = 0; i < 6; i++) {
    const fd = openSync(path.join(big, `usr/share/blobs/b${i}`), 'w');
    writeSync(fd, `blob ${i}\n`);
    ftruncateSync(fd, 48 * 1024 * 1024);
    closeSync(fd);
  }
  // 6 x 8 folders of 8 small files: a warm scan hands its walk to walk threads after 20 paths.
  small = path.join(dir, 'small');
  for (let t = 0; t < 6; t++) {
    for (let d = 0; d < 8; d++) {
      mkdirSync(path.join(small, `usr/share/t${t}/d${d}`), { recursive: true });
      for (let f = 0; f < 8; f++) writeFileSync(path.join(small, `usr/share/t${t}/d${d}/f${f}`), `t${t} d${d} f${f}\n`);
    }
  }
  mkdirSync(path.join(small, 'etc'));
  await sleep(2100); // past the racy window: the small tree's files may be remembered clean
  bigManifest = path.join(dir, 'big.json.gz');
  smallManifest = path.join(dir, 'small.json.gz');
  for (const [root, out] of [[big, bigManifest], [small, smallManifest]] as const) {
    const r = runAgent(['manifest', '--root', root, '--out', out, '--state', path.join(dir, 'manifest-state'), '--name', 'threads', '--image-version', '1', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
  }
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('--threads', () => {
  it('takes a whole number of threads from 1 to 64', () => {
    expect(parseThreads(undefined)).toBeUndefined();
    expect(parseThreads('1')).toBe(1);
    expect(parseThreads(' 2 ')).toBe(2);
    expect(parseThreads(String(MAX_THREADS))).toBe(MAX_THREADS);
    for (const bad of ['0', '65', '1.5', '-1', 'two', '', '2x', '1e1']) {
      expect(() => parseThreads(bad), bad).toThrow(`--threads expects a whole number from 1 to ${MAX_THREADS}, not "${bad}"`);
    }
  });

  it('refuses a bad count on the command line with exit 2, what to pass instead and no stack trace', () => {
    for (const args of [
      ['scan', '--root', small, '--manifest', smallManifest, '--state', path.join(dir, 'cli-state'), '--threads', '0'],
      ['manifest', '--root', small, '--out', path.join(dir, 'never.json'), '--threads', 'all'],
      ['audit', '--root', small, '--state', path.join(dir, 'audit-state'), '--threads', '100'],
    ]) {
      const r = runAgent(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/--threads expects a whole number from 1 to 64, not "(0|all|100)" \(1 holds the least memory; leave it out for one thread per core\)/);
      expect(hasStackTrace(r.stderr)).toBe(false);
    }
  });

  it('is taught in the help of every walking command', () => {
    for (const command of ['scan', 'manifest', 'audit']) {
      const r = runAgent([command, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout, command).toMatch(/--threads N\s+hash files on at most N threads, and walk on at most N beside\s+the main one \(1-64; default: one per core, here \d+\)/);
    }
  });

  it('runs a scan on one thread with the same report', () => {
    const r = runAgent(['scan', '--root', small, '--manifest', smallManifest, '--state', path.join(dir, 'one-state'), '--threads', '1', '--json', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).summary.status).toBe('clean');
  });
});

/** A cold scan of the big tree (every byte hashed) with the walk options `scan --threads` gives. */
async function hashAll(threads: string | undefined): Promise<WalkStats> {
  const root = await openRoot(big);
  const walk = walkOptions({ ...(threads === undefined ? {} : { threads }), state: path.join(dir, `cold-${threads ?? 'default'}-${Date.now()}`), quiet: true }, root, io);
  let stats: WalkStats | undefined;
  try {
    const report = await scanRoot(root, await readManifestFile(bigManifest), { ...walk.options, hostname: 'h', onStats: (s) => (stats = { ...s }) });
    expect(report.summary.status).toBe('clean');
  } finally {
    walk.close(0);
  }
  expect(stats!.hashed).toBe(6);
  return stats!;
}

/** A warm scan of the small tree (walk threads after 20 paths) with the walk options `scan --threads` gives. */
async function walkWarm(threads: string | undefined): Promise<WalkStats> {
  const root = await openRoot(small);
  const state = path.join(dir, 'warm-state');
  const walk = walkOptions({ ...(threads === undefined ? {} : { threads }), state, quiet: true }, root, io);
  walk.close(0);
  const { cache: _c, packages: _p, ...options } = walk.options;
  // The first scan of a state remembers the clean paths; the second compares with them.
  await warmScan(small, smallManifest, state, { ...options, walkThreadsAfter: 20, waitForWalkThreads: true });
  const { stats } = await warmScan(small, smallManifest, state, { ...options, walkThreadsAfter: 20, waitForWalkThreads: true });
  expect(stats.knownClean).toBeGreaterThan(0);
  return stats;
}

describe('--threads bounds the pools', () => {
  it.skipIf(availableParallelism() < 2)('hashes on one thread with --threads 1, where the default starts one per core', async () => {
    expect((await hashAll(undefined)).hashThreads).toBe(Math.min(availableParallelism(), 6));
    expect((await hashAll('2')).hashThreads).toBe(2);
    expect((await hashAll('1')).hashThreads).toBe(1);
  }, 60_000);

  it.skipIf(availableParallelism() < 2)('holds a manifest\'s pool, started before the options were read, to --threads 1', async () => {
    startHashingEarly();
    const pool = hashPoolFor({ size: 1 });
    try {
      const files = [0, 1, 2, 3].map((i) => Buffer.from(path.join(big, `usr/share/blobs/b${i}`)));
      // One batch per file, all at once: a pool of one thread per core would start a second.
      const results = await Promise.all(files.map((f) => pool.hash([f], 48 * 1024 * 1024)));
      expect(results.flat().every((r) => 'sha256' in r)).toBe(true);
      expect(pool.threadsStarted).toBe(1);
    } finally {
      await pool.close();
    }
  });

  it('walks on as many walk threads as --threads says, and one per core without it', async () => {
    expect((await walkWarm(undefined)).walkThreads).toBe(availableParallelism());
    expect((await walkWarm('1')).walkThreads).toBe(1);
    expect((await walkWarm('3')).walkThreads).toBe(3);
  }, 60_000);
});
