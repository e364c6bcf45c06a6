// The fingerprint engine on real files: robustness of the walk (point 4 of issue 4) and the stat
// cache (a rescan reads exactly the files whose stat moved). Counters, never timings.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPolicy } from '../shared/policy.js';
import type { Policy } from '../shared/policy.js';
import { fingerprint } from '../agent/fingerprint/walk.js';
import type { FingerprintOptions, WalkStats } from '../agent/fingerprint/walk.js';
import { HashPool } from '../agent/fingerprint/hash-pool.js';
import { openRoot } from '../agent/root.js';
import { openStatCache } from '../agent/fingerprint/stat-cache.js';
import { scanRoot } from '../agent/diff/scan.js';
import { manifestFromObservation } from '../agent/manifest/build.js';
import { observe } from '../agent/fingerprint/observe.js';
import { Budget } from '../agent/fingerprint/budget.js';

const POLICY: Policy = { ...defaultPolicy(), tracked: ['/data'] };
const dirs: string[] = [];

function tree(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'qs-fp-'));
  dirs.push(dir);
  mkdirSync(path.join(dir, 'data'));
  return dir;
}

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function walk(dir: string, opts: FingerprintOptions = {}, policy = POLICY) {
  return fingerprint(await openRoot(dir), policy, opts);
}

const sha = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

describe('walking real trees', () => {
  it('records a FIFO without ever opening it', async () => {
    const dir = tree();
    execFileSync('mkfifo', [path.join(dir, 'data/pipe')]);
    writeFileSync(path.join(dir, 'data/after'), 'x');
    // Opening the FIFO for reading would block until a writer came: this would time out.
    const fp = await walk(dir);
    const pipe = fp.files.find((f) => f.path === '/data/pipe');
    expect(pipe).toMatchObject({ type: 'fifo' });
    expect(pipe?.sha256).toBeUndefined();
    expect(fp.files.find((f) => f.path === '/data/after')?.sha256).toBe(sha('x'));
    expect(fp.warnings).toEqual([]);
  });

  it('reports a file rewritten while it is hashed as changed during the scan, never with a digest', async () => {
    const dir = tree();
    const file = path.join(dir, 'data/busy');
    writeFileSync(file, 'start');
    truncateSync(file, 1024 ** 3); // sparse: takes a while to read, costs no disk
    // A writer that keeps changing the file for as long as the scan runs.
    const writer = spawn(process.execPath, ['-e', `const fs=require('fs');const fd=fs.openSync(${JSON.stringify(file)},'r+');let i=0;process.stdout.write('go\\n');setInterval(()=>fs.writeSync(fd,String(i++%10),0),2)`]);
    await new Promise((r) => writer.stdout.once('data', r));
    try {
      const fp = await walk(dir);
      const rec = fp.files.find((f) => f.path === '/data/busy');
      expect(rec?.sha256).toBeUndefined();
      expect(rec?.unreadable).toMatch(/hash/);
      expect(fp.warnings).toEqual([expect.objectContaining({ code: 'CHANGED_DURING_SCAN', path: '/data/busy' })]);
    } finally {
      writer.kill();
    }
  });

  it('reads a file again when only its ctime moved during the read (a hard link made meanwhile), and keeps its digest', async () => {
    const dir = tree();
    const file = path.join(dir, 'data/big');
    writeFileSync(file, 'head');
    truncateSync(file, 256 * 1024 ** 2); // sparse: its read lasts long enough to link it meanwhile
    const expected = createHash('sha256');
    const zeros = Buffer.alloc(1024 * 1024);
    expected.update(Buffer.concat([Buffer.from('head'), zeros.subarray(4)]));
    for (let done = zeros.length; done < 256 * 1024 ** 2; done += zeros.length) expected.update(zeros);
    const pool = new HashPool({ size: 1 });
    try {
      const hashed = pool.hash([Buffer.from(file)]);
      // The hashing thread is ours: once /proc shows the file open, its read has begun.
      const isOpen = (): boolean => readdirSync('/proc/self/fd').some((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`) === file;
        } catch {
          return false;
        }
      });
      while (!isOpen()) await sleep(1);
      linkSync(file, path.join(dir, 'big-link'));
      const [result] = await hashed;
      expect(result).toMatchObject({ sha256: expected.digest('hex'), bytes: 256 * 1024 ** 2 });
    } finally {
      await pool.close();
    }
  }, 120_000);

  it('reports a file that vanished before it could be hashed, without failing the others', async () => {
    const dir = tree();
    writeFileSync(path.join(dir, 'data/stays'), 'here');
    const pool = new HashPool({ size: 1 });
    try {
      const [gone, stays] = await pool.hash([Buffer.from(path.join(dir, 'data/gone')), Buffer.from(path.join(dir, 'data/stays'))]);
      expect(gone).toEqual({ code: 'CHANGED_DURING_SCAN', error: 'vanished during the scan' });
      expect(stays).toMatchObject({ sha256: sha('here'), bytes: 4 });
    } finally {
      await pool.close();
    }
  });

  it('hashes a sparse file of several GB by streaming it, at no disk cost', async () => {
    const dir = tree();
    const file = path.join(dir, 'data/sparse');
    const size = 3 * 1024 ** 3;
    writeFileSync(file, 'head');
    truncateSync(file, size);
    expect(statSync(file).blocks * 512).toBeLessThan(1024 * 1024);
    const expected = createHash('sha256');
    expected.update('head');
    const zeros = Buffer.alloc(1024 * 1024);
    expected.update(zeros.subarray(4));
    for (let done = zeros.length; done < size; done += zeros.length) expected.update(zeros);
    const before = process.memoryUsage().rss;
    const fp = await walk(dir);
    expect(fp.files.find((f) => f.path === '/data/sparse')).toMatchObject({ size, sha256: expected.digest('hex') });
    expect(fp.stats.bytesHashed).toBe(size);
    // Read in chunks on the hashing threads: nowhere near the file's size in memory.
    expect(process.memoryUsage().rss - before).toBeLessThan(512 * 1024 * 1024);
  }, 120_000);

  it('keeps a name that is not valid UTF-8 byte-exact', async () => {
    const dir = tree();
    const name = Buffer.from([0x6c, 0x61, 0x74, 0x69, 0x6e, 0x31, 0xe9, 0x2e, 0x74, 0x78, 0x74]); // "latin1\xe9.txt"
    writeFileSync(Buffer.concat([Buffer.from(path.join(dir, 'data') + '/'), name]), 'bytes');
    const fp = await walk(dir);
    const rec = fp.files.find((f) => f.rawPath !== undefined);
    expect(rec).toBeDefined();
    expect(Buffer.from(rec!.rawPath!, 'base64')).toEqual(Buffer.concat([Buffer.from('/data/'), name]));
    expect(rec!.sha256).toBe(sha('bytes'));
  });

  it('forgets the oldest hard-link group past its bound: a group whose other names lie outside the walk is not held to the end', async () => {
    const dir = tree();
    mkdirSync(path.join(dir, 'elsewhere'));
    for (let i = 0; i < 60; i++) {
      writeFileSync(path.join(dir, `data/f${String(i).padStart(2, '0')}`), `content ${i}`);
      linkSync(path.join(dir, `data/f${String(i).padStart(2, '0')}`), path.join(dir, `elsewhere/f${i}`));
    }
    // A pair inside the walk, its second name after every other group: hashed again once forgotten.
    writeFileSync(path.join(dir, 'data/a-first'), 'pair');
    linkSync(path.join(dir, 'data/a-first'), path.join(dir, 'data/z-last'));
    const fp = await walk(dir, { maxLinkGroups: 10 });
    expect(fp.stats.linkGroupsPeak).toBe(10);
    const files = fp.files.filter((f) => f.type === 'file');
    expect(files).toHaveLength(62);
    expect(files.every((f) => f.sha256 === sha(f.path.startsWith('/data/f') ? `content ${Number(f.path.slice(7))}` : 'pair'))).toBe(true);
    expect(fp.stats.hashed).toBe(62);
    // Unbounded as before, every group is held: the bound is what keeps the walk's memory flat.
    expect((await walk(dir, { maxLinkGroups: Number.POSITIVE_INFINITY })).stats).toMatchObject({ linkGroupsPeak: 61, hashed: 61 });
  });

  it('hashes the two names of a hard link pair once and gives both the digest', async () => {
    const dir = tree();
    writeFileSync(path.join(dir, 'data/a'), 'linked');
    linkSync(path.join(dir, 'data/a'), path.join(dir, 'data/b'));
    const hashed: string[] = [];
    const fp = await walk(dir, { onHashed: (p) => hashed.push(p) });
    expect(fp.files.filter((f) => f.type === 'file').map((f) => [f.path, f.sha256])).toEqual([
      ['/data/a', sha('linked')],
      ['/data/b', sha('linked')],
    ]);
    expect(hashed).toEqual(['/data/a']);
    expect(fp.stats.hashed).toBe(1);
  });


  // Seen under load: a manifest of a cached tree lost the digests of every file another test was
  // hard-linking into a container layer at the time (`cp -al`), because a link moves the inode's
  // ctime and the walk took that for a change of content. `onProgress` runs after the walk has
  // lstat'ed the files and before their batch goes to a hashing thread: the change lands there.
  it('keeps the digest of a file another process links, chmods or replaces between the walk and its hashing', async () => {
    const dir = tree();
    const names = Array.from({ length: 40 }, (_, i) => `f${i}`);
    for (const n of names) writeFileSync(path.join(dir, 'data', n), n);
    mkdirSync(path.join(dir, 'copy'));
    let changed = false;
    const fp = await walk(dir, {
      onProgress: () => {
        if (changed) return;
        changed = true;
        for (const n of names.slice(2)) linkSync(path.join(dir, 'data', n), path.join(dir, 'copy', n));
        chmodSync(path.join(dir, 'data/f0'), 0o600);
        writeFileSync(path.join(dir, 'copy/new'), 'other bytes');
        renameSync(path.join(dir, 'copy/new'), path.join(dir, 'data/f1'));
      },
    });
    expect(changed).toBe(true);
    const byPath = new Map(fp.files.map((f) => [f.path, f]));
    for (const n of names.slice(2)) expect(byPath.get(`/data/${n}`)).toMatchObject({ sha256: sha(n), size: n.length });
    // Its mode as it was when its bytes were read, beside the digest of those bytes.
    expect(byPath.get('/data/f0')).toMatchObject({ sha256: sha('f0'), mode: '0600' });
    // Another file under the name: the walk's record is not that file's, so no digest.
    expect(byPath.get('/data/f1')?.sha256).toBeUndefined();
    expect(fp.warnings).toEqual([expect.objectContaining({ code: 'CHANGED_DURING_SCAN', path: '/data/f1', message: expect.stringMatching(/replaced/) })]);
  });
  it('walks a tree deeper than any call stack', async () => {
    const dir = tree();
    const parts = Array.from({ length: 1500 }, () => 'd');
    mkdirSync(path.join(dir, 'data', ...parts), { recursive: true });
    writeFileSync(path.join(dir, 'data', ...parts, 'leaf'), 'deep');
    const fp = await walk(dir);
    expect(fp.files).toHaveLength(1 + 1500 + 1);
    expect(fp.files.at(-1)).toMatchObject({ path: `/data/${parts.join('/')}/leaf`, sha256: sha('deep') });
  });

  it('reports an unreadable file and folder as warnings and still fingerprints the rest (run unprivileged)', () => {
    const dir = tree();
    chmodSync(dir, 0o755);
    // The CLI walks the default tracked folders: lay the tree out under /etc.
    mkdirSync(path.join(dir, 'etc'));
    writeFileSync(path.join(dir, 'etc/public'), 'anyone');
    writeFileSync(path.join(dir, 'etc/secret'), 'root only', { mode: 0o600 });
    mkdirSync(path.join(dir, 'etc/closed'), { mode: 0o700 });
    writeFileSync(path.join(dir, 'etc/closed/inside'), 'x');
    const state = path.join(dir, 'state');
    mkdirSync(state);
    chownSync(state, 65534, 65534);
    const out = path.join(state, 'm.json');
    // Tests run as root, who reads everything: the agent runs as nobody to meet a real EACCES.
    const run = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', path.resolve('agent/main.ts'), 'manifest', '--root', dir, '--out', out, '--state', state], {
      encoding: 'utf8',
      env: { ...process.env, HOME: state },
    });
    expect(run.stderr).toContain('UNREADABLE /etc/secret: permission denied');
    expect(run.stderr).toContain('UNREADABLE /etc/closed: permission denied');
    expect(run.status).toBe(0);
    const text = readFileSync(out, 'utf8');
    expect(text).not.toContain('unreadable'); // why a file could not be read is a warning, not part of the image
    const manifest = JSON.parse(text) as { files: Array<{ path: string; sha256?: string }> };
    expect(manifest.files.map((f) => [f.path, f.sha256])).toEqual([
      ['/etc', undefined],
      ['/etc/closed', undefined],
      ['/etc/public', sha('anyone')],
      ['/etc/secret', undefined],
    ]);
  });

  it('does not cross into another mounted filesystem unless asked, and never walks a /proc-like one', async () => {
    const dir = tree();
    mkdirSync(path.join(dir, 'data/mnt'));
    mkdirSync(path.join(dir, 'data/proc'));
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', path.join(dir, 'data/mnt')]);
    try {
      execFileSync('mount', ['-t', 'proc', 'proc', path.join(dir, 'data/proc')]);
      try {
        writeFileSync(path.join(dir, 'data/mnt/other-fs'), 'x');
        const stay = await walk(dir);
        expect(stay.files.map((f) => f.path)).toEqual(['/data', '/data/mnt', '/data/proc']);
        expect(stay.warnings.map((w) => [w.code, w.path])).toEqual([
          ['MOUNT_NOT_CROSSED', '/data/mnt'],
          ['MOUNT_NOT_CROSSED', '/data/proc'],
        ]);
        const cross = await walk(dir, { crossMounts: true });
        expect(cross.files.map((f) => f.path)).toEqual(['/data', '/data/mnt', '/data/mnt/other-fs', '/data/proc']);
        expect(cross.warnings.map((w) => [w.code, w.path])).toEqual([['PSEUDO_FS_SKIPPED', '/data/proc']]);
      } finally {
        execFileSync('umount', [path.join(dir, 'data/proc')]);
      }
    } finally {
      execFileSync('umount', [path.join(dir, 'data/mnt')]);
    }
  });
});

describe('the stat cache', () => {
  let dir: string;
  let state: string;

  beforeAll(async () => {
    dir = tree();
    state = path.join(dir, 'state');
    for (let i = 0; i < 50; i++) writeFileSync(path.join(dir, `data/f${String(i).padStart(2, '0')}`), `content ${i}`);
    mkdirSync(path.join(dir, 'data/sub'));
    writeFileSync(path.join(dir, 'data/sub/conf'), 'a=1');
    symlinkSync('f00', path.join(dir, 'data/link'));
    // Files changed in the last moments before a walk are never trusted to the cache (see
    // racyWindowMs): let this tree age past that window, as any installed tree has.
    await sleep(2100);
  });

  async function scan(manifest: Parameters<typeof scanRoot>[1]) {
    const cache = openStatCache(state, dir);
    const hashed: string[] = [];
    let stats: WalkStats | undefined;
    try {
      const report = await scanRoot(await openRoot(dir), manifest, { cache, onHashed: (p) => hashed.push(p), onStats: (s) => (stats = s), collectors: [] });
      return { report, hashed: hashed.sort(), stats: stats! };
    } finally {
      cache.close();
    }
  }

  it('seeds from the manifest run, then a rescan finds and reads exactly the files that changed', async () => {
    const root = await openRoot(dir);
    const cache = openStatCache(state, dir);
    const obs = await observe(root, POLICY, { cache, collectors: [] });
    cache.close();
    expect(obs.stats).toMatchObject({ hashed: 51, cacheHits: 0 });
    const manifest = manifestFromObservation(obs, POLICY, { name: 't', version: '1' }, new Date());

    const warm = await scan(manifest);
    expect(warm.report.summary.status).toBe('clean');
    expect(warm.hashed).toEqual([]);
    expect(warm.stats).toMatchObject({ hashed: 0, cacheHits: 51 });

    // Content edited (size changes), content edited with size and mtime put back (only ctime
    // tells), mode changed (content not), one added, one removed.
    writeFileSync(path.join(dir, 'data/f01'), 'content 1 edited');
    const f02 = path.join(dir, 'data/f02');
    const { atime, mtime } = statSync(f02);
    writeFileSync(f02, 'CONTENT 2');
    utimesSync(f02, atime, mtime);
    chmodSync(path.join(dir, 'data/sub/conf'), 0o600);
    writeFileSync(path.join(dir, 'data/new'), 'new');
    unlinkSync(path.join(dir, 'data/f03'));

    const after = await scan(manifest);
    expect(after.hashed).toEqual(['/data/f01', '/data/f02', '/data/new', '/data/sub/conf']);
    const found = after.report.findings.map((f) => [f.kind, f.path]).sort();
    expect(found).toEqual([
      ['file-added', '/data/new'],
      ['file-metadata', '/data/sub/conf'],
      ['file-modified', '/data/f01'],
      ['file-modified', '/data/f02'],
      ['file-removed', '/data/f03'],
    ]);
  });

  it('keeps the security xattrs with the digest: a warm walk reads none, a setcap since shows', async () => {
    const other = tree();
    const st = path.join(other, 'state');
    const bin = path.join(other, 'data/ping');
    copyFileSync('/bin/true', bin);
    execFileSync('setcap', ['cap_net_raw+ep', bin]);
    writeFileSync(path.join(other, 'data/plain'), 'no xattrs');
    await sleep(2100); // past the racy window, as an installed tree is
    const walkCached = async () => {
      const cache = openStatCache(st, other);
      try {
        const fp = await walk(other, { cache });
        return { stats: fp.stats, ping: fp.files.find((f) => f.path === '/data/ping'), plain: fp.files.find((f) => f.path === '/data/plain') };
      } finally {
        cache.close();
      }
    };
    const cold = await walkCached();
    expect(cold.stats).toMatchObject({ hashed: 2, xattrsRead: 2 });
    const warm = await walkCached();
    expect(warm.stats).toMatchObject({ hashed: 0, cacheHits: 2, xattrsRead: 0 });
    expect(warm.ping?.capability).toEqual({ effective: true, permitted: ['cap_net_raw'], inheritable: [] });
    expect(warm.plain).not.toHaveProperty('capability');
    expect(warm).toEqual({ ...cold, stats: warm.stats });
    // setcap moves ctime: the cache no longer answers for the file, which is read again.
    execFileSync('setcap', ['cap_sys_admin+p', bin]);
    const changed = await walkCached();
    expect(changed.stats).toMatchObject({ hashed: 1, cacheHits: 1, xattrsRead: 1 });
    expect(changed.ping?.capability).toEqual({ effective: false, permitted: ['cap_sys_admin'], inheritable: [] });
  });

  it('does not trust the cache with a file that changed just before the walk', async () => {
    const other = tree();
    const st = path.join(other, 'state');
    writeFileSync(path.join(other, 'data/fresh'), 'just written');
    const first = openStatCache(st, other);
    expect((await walk(other, { cache: first })).stats.hashed).toBe(1);
    first.close();
    // Its timestamps could still be those of a write in the same clock tick: read it again.
    const second = openStatCache(st, other);
    expect((await walk(other, { cache: second })).stats).toMatchObject({ hashed: 1, cacheHits: 0 });
    second.close();
  });
});

describe('a lowered priority', () => {
  it('sets the CPU nice level and, at 19, the idle I/O class', () => {
    const script = `import(${JSON.stringify(path.resolve('agent/fingerprint/priority.ts'))}).then((m) => {
      const problems = m.lowerPriority(19);
      const io = require('node:child_process').execFileSync('ionice', ['-p', String(process.pid)], { encoding: 'utf8' }).trim();
      console.log(JSON.stringify({ problems, nice: require('node:os').getPriority(), io }));
    })`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({ problems: [], nice: 19, io: 'idle' });
  });
});

describe('the scan budget', () => {
  it('makes a caller wait until its spending fits the rates', () => {
    let t = 0;
    const budget = new Budget({ filesPerSec: 100, bytesPerSec: 1000 }, () => t);
    expect(budget.delayFor(50, 0)).toBe(500);
    expect(budget.delayFor(0, 2000)).toBe(2000);
    t = 3000;
    expect(budget.delayFor(50, 2000)).toBe(0);
    expect(new Budget({}).limited).toBe(false);
  });
});

describe('an isolated scan', () => {
  it('runs the command in a child process and hands back its output and exit code', async () => {
    const { runIsolated } = await import('../agent/daemon/isolated.js');
    const r = await runIsolated(['scan', '--root', '/nonexistent-root', '--manifest', 'x.json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('root /nonexistent-root does not exist');
  });
});
