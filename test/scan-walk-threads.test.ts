// Past a few paths a warm scan hands its walk to walk threads (walk-pool.ts): each takes the
// lstat of its paths and compares it with the paths known clean itself, and only the exceptions
// come back. The report must be exactly the one the walk on the main thread gives, and the one a
// scan comparing every path gives, on a tree split into several jobs over both threads.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WalkStats } from '../agent/fingerprint/walk.js';
import { cleanReaderAhead } from '../agent/fingerprint/clean-paths.js';
import { WalkPool } from '../agent/fingerprint/walk-pool.js';
import { readManifestFile } from '../agent/manifest/io.js';
import { writeManifestStream } from '../agent/manifest/stream.js';
import type { Report } from '../shared/report.js';
import { runAgent } from './helpers/cli.js';
import { fullScan, warmScan } from './helpers/warm-scan.js';

let dir: string;
let root: string;
let state: string;
let manifest: string;
const at = (p: string): string => path.join(root, p);
const mnt = (): string => at('usr/share/t4/mnt');

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'qs-walk-threads-'));
  root = path.join(dir, 'root');
  state = path.join(dir, 'state');
  manifest = path.join(dir, 'manifest.json.gz');
  for (let t = 0; t < 6; t++) {
    for (let d = 0; d < 8; d++) {
      mkdirSync(at(`usr/share/t${t}/d${d}`), { recursive: true });
      for (let f = 0; f < 8; f++) writeFileSync(at(`usr/share/t${t}/d${d}/f${f}`), `t${t} d${d} f${f}\n`);
    }
  }
  // Names the threads must order and spell as the main thread does: bytes that are not UTF-8,
  // UTF-8 beyond ASCII, and names that sort around '/' (a-b and a.b against the folder a).
  for (const name of ['a-b', 'a.b', 'Z', '~', 'caf\u00e9', '\u65e5\u672c']) writeFileSync(at(`usr/share/t3/d4/${name}`), `${name}\n`);
  mkdirSync(at('usr/share/t3/d4/a'));
  writeFileSync(at('usr/share/t3/d4/a/x'), 'x\n');
  mkdirSync(Buffer.from(at('usr/share/t3/d4/raw\xff'), 'latin1'));
  writeFileSync(Buffer.from(at('usr/share/t3/d4/raw\xff/caf\xe9'), 'latin1'), 'not UTF-8\n');
  mkdirSync(at('usr/bin'), { recursive: true });
  writeFileSync(at('usr/top-file'), 'at the top\n');
  writeFileSync(at('usr/bin/tool'), '#!/bin/sh\n', { mode: 0o755 });
  mkdirSync(at('etc'), { recursive: true });
  writeFileSync(at('etc/motd'), 'welcome\n');
  // Another filesystem below a tracked folder: never walked, said once per scan.
  mkdirSync(mnt());
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt()]);
  writeFileSync(path.join(mnt(), 'other-fs'), 'x');
  await sleep(2100);
  const first = path.join(dir, 'first.json.gz');
  const r = runAgent(['manifest', '--root', root, '--out', first, '--state', state, '--name', 'threads', '--image-version', '1', '--quiet']);
  expect(r.code, r.stderr).toBe(0);
  // A folder and a name pattern the policy ignores, inside the subtrees the threads walk.
  const { files, ...header } = await readManifestFile(first);
  async function* records() {
    yield files.filter((f) => !f.path.startsWith('/usr/share/t2/d3') && !f.path.endsWith('.tmp'));
  }
  await writeManifestStream(manifest, { ...header, policy: { ...header.policy, ignored: [...header.policy.ignored, '/usr/share/t2/d3', '/usr/share/**/*.tmp'] } }, records());
  // The first scan against it remembers what it found clean; the next ones compare with that.
  expect((await scan({ walkThreads: 2 })).stats.knownClean).toBe(0);
}, 60_000);

afterAll(() => {
  execFileSync('umount', [mnt()]);
  rmSync(dir, { recursive: true, force: true });
});

/** A scan as `quicksand-agent scan` runs it, walking on `walkThreads` threads (or `walkPool`'s) after 20 paths. */
function scan(opts: { walkThreads: number; walkPool?: WalkPool }): Promise<{ report: unknown; stats: WalkStats }> {
  return warmScan(root, manifest, state, { walkThreadsAfter: 20, waitForWalkThreads: true, ...opts });
}

/** The scan on threads, on the main thread, and one comparing every path: all three alike. */
async function scanAll(): Promise<{ report: unknown; stats: WalkStats }> {
  const threaded = await scan({ walkThreads: 2 });
  const single = await scan({ walkThreads: 0 });
  const full = await fullScan(root, manifest);
  expect(threaded.report).toEqual(full);
  expect(single.report).toEqual(full);
  expect(single.stats.walkJobs).toBe(0);
  return threaded;
}

const kinds = (r: unknown): string[] => (r as Report).findings.map((f) => `${f.kind} ${f.rawPath ?? f.path ?? f.name}`).sort();

describe('a warm scan walked on threads', () => {
  it('reports nothing on an untouched tree, with the walk split over several jobs', async () => {
    const { report, stats } = await scanAll();
    expect(kinds(report)).toEqual([]);
    expect((report as Report).warnings.map((w) => [w.code, w.path])).toEqual([['MOUNT_NOT_CROSSED', '/usr/share/t4/mnt']]);
    expect(stats.walkJobs).toBeGreaterThanOrEqual(2);
    expect(stats.knownClean).toBeGreaterThan(300);
    expect(stats.hashed).toBe(0);
  });

  it('sees changes in different subtrees and in the tracked folder itself, and nothing in what is ignored', async () => {
    writeFileSync(at('usr/share/t1/d2/f3'), 'changed\n');
    chmodSync(at('usr/share/t5/d7/f7'), 0o600);
    unlinkSync(at('usr/share/t3/d0/f0'));
    writeFileSync(at('usr/share/t0/d5/new'), 'new\n');
    writeFileSync(at('usr/top-file'), 'changed at the top\n');
    writeFileSync(at('usr/share/t2/d3/ignored-new'), 'ignored\n');
    writeFileSync(at('usr/share/t4/d1/scratch.tmp'), 'ignored\n');
    const { report, stats } = await scanAll();
    expect(kinds(report)).toEqual([
      'file-added /usr/share/t0/d5/new',
      'file-metadata /usr/share/t5/d7/f7',
      'file-modified /usr/share/t1/d2/f3',
      'file-modified /usr/top-file',
      'file-removed /usr/share/t3/d0/f0',
    ]);
    expect(stats.walkJobs).toBeGreaterThanOrEqual(2);
    // Twice: what this scan remembered must not hide any of it from the next.
    const again = await scanAll();
    expect(again.report).toEqual(report);
  });

  it('walks names that are not ASCII, or not UTF-8, as the main thread does', async () => {
    writeFileSync(Buffer.from(at('usr/share/t3/d4/raw\xff/caf\xe9'), 'latin1'), 'changed, still not UTF-8\n');
    writeFileSync(at('usr/share/t3/d4/caf\u00e9'), 'changed\n');
    chmodSync(at('usr/share/t3/d4/a-b'), 0o600);
    writeFileSync(at('usr/share/t3/d4/a/y'), 'new\n');
    const { report, stats } = await scanAll();
    const raw = Buffer.from('/usr/share/t3/d4/raw\xff/caf\xe9', 'latin1').toString('base64');
    expect(kinds(report)).toEqual(
      expect.arrayContaining([`file-modified ${raw}`, 'file-modified /usr/share/t3/d4/caf\u00e9', 'file-metadata /usr/share/t3/d4/a-b', 'file-added /usr/share/t3/d4/a/y']),
    );
    expect(stats.walkJobs).toBeGreaterThanOrEqual(2);
    expect((await scanAll()).report).toEqual(report);
  });

  it('takes walk threads made before the manifest was read, and walks them with its ignored globs', async () => {
    writeFileSync(at('usr/share/t2/d3/ahead-ignored'), 'ignored\n');
    writeFileSync(at('usr/share/t4/d1/ahead.tmp'), 'ignored\n');
    const single = await scan({ walkThreads: 0 });
    // Made from the state folder alone, as `quicksand-agent scan` makes them before it opens the manifest.
    expect(cleanReaderAhead(state, root, 1_000_000)).toBeUndefined();
    const reader = cleanReaderAhead(state, root, 20);
    expect(reader).toBeDefined();
    const ahead = new WalkPool({ threads: 2, skip: Buffer.byteLength(root), crossMounts: false, reader: reader! });
    try {
      await ahead.whenReady;
      const { report, stats } = await scan({ walkThreads: 2, walkPool: ahead });
      expect(report).toEqual(await fullScan(root, manifest));
      expect(stats.walkJobs).toBe(ahead.jobsWalked);
      expect(stats.walkJobs).toBeGreaterThanOrEqual(2);
      // The ignored folder and names were not walked: as many paths as the walk on the main thread.
      expect(stats.files).toBe(single.stats.files);
    } finally {
      await ahead.close();
    }
  });
});
