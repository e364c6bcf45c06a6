// The stat cache read as one ordered range merged with the walk: every unchanged file must be
// answered from it (a merge that loses its place would only re-hash, so the counters are what
// tell), and a file whose content changed must never be. Counters, never timings.
import { mkdirSync, mkdtempSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultPolicy } from '../shared/policy.js';
import type { Policy } from '../shared/policy.js';
import { fingerprint } from '../agent/fingerprint/walk.js';
import type { FingerprintOptions } from '../agent/fingerprint/walk.js';
import { openRoot } from '../agent/root.js';
import { cacheKey, openStatCache } from '../agent/fingerprint/stat-cache.js';

const POLICY: Policy = { ...defaultPolicy(), tracked: ['/data'] };
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// Names whose bytes sort around '/' (0x2f): '-' and '.' below it, '0' and 'A' above, a space,
// and a name that is not UTF-8. The walk puts `/data/a/…` before `/data/a-b`; plain byte order
// would not.
const TRICKY = ['a', 'a b', 'a!', 'a-b', 'a.b', 'a0', 'A', 'a~'];
const NOT_UTF8 = Buffer.from([0x61, 0xff, 0x2d]);

/** A tree of tricky names, nested folders and one folder of more files than a page of the cache. */
function buildTree(): { dir: string; regular: number } {
  const dir = mkdtempSync(path.join(tmpdir(), 'qs-fpo-'));
  dirs.push(dir);
  const data = path.join(dir, 'data');
  mkdirSync(path.join(data, 'a/deep/er'), { recursive: true });
  let regular = 0;
  const file = (p: string | Buffer, text: string): void => {
    writeFileSync(p, text);
    regular++;
  };
  for (const n of TRICKY.slice(1)) file(path.join(data, n), `top ${n}`);
  for (const n of TRICKY) file(path.join(data, 'a', n === 'a' ? 'a1' : n), `in a ${n}`);
  file(path.join(data, 'a/deep/er/leaf'), 'leaf');
  file(Buffer.concat([Buffer.from(`${data}/`), NOT_UTF8]), 'not utf-8');
  mkdirSync(path.join(data, 'many'));
  for (let i = 0; i < 2600; i++) file(path.join(data, 'many', `f${i}`), `file ${i}`);
  return { dir, regular };
}

// Trust files written just now: the test checks the merge, not the racy-clean guard (which
// fingerprint.test.ts covers), and needs no pause for the tree to age.
const TRUST_NOW: FingerprintOptions = { racyWindowMs: -60_000 };

async function walkCached(dir: string, state: string) {
  const cache = openStatCache(state, dir);
  const hashed: string[] = [];
  try {
    const fp = await fingerprint(await openRoot(dir), POLICY, { ...TRUST_NOW, cache, onHashed: (p) => hashed.push(p) });
    return { fp, hashed: hashed.sort(), pages: cache.pagesRead() };
  } finally {
    cache.close();
  }
}

describe('the stat cache merged with the walk', () => {
  it('answers every unchanged file from its ordered read and reads exactly the changed ones', async () => {
    const { dir, regular } = buildTree();
    const state = path.join(dir, 'state');
    const cold = await walkCached(dir, state);
    expect(cold.fp.stats).toMatchObject({ hashed: regular, cacheHits: 0 });
    const warm = await walkCached(dir, state);
    expect(warm.fp.stats).toMatchObject({ hashed: 0, cacheHits: regular });
    expect(warm.fp.files).toEqual(cold.fp.files);
    // In order: pages of 16, 32, ... 1024 rows cover the 2,6xx files. Looking up out of the
    // cache's order would read a page again at nearly every file.
    expect(warm.pages).toBeLessThanOrEqual(10);

    // Same size, mtime put back: only ctime tells. Files gone and added between cached ones
    // (the merge has to skip and to miss in the middle of a page and at its edges).
    const same = path.join(dir, 'data/a/a-b');
    const { atime, mtime, size } = statSync(same);
    writeFileSync(same, 'IN A a-b');
    utimesSync(same, atime, mtime);
    expect(statSync(same).size).toBe(size);
    for (const i of [0, 1, 1023, 1024, 2000]) unlinkSync(path.join(dir, 'data/many', `f${i}`));
    writeFileSync(path.join(dir, 'data/a-a'), 'new');
    writeFileSync(path.join(dir, 'data/many/f1023a'), 'new');
    writeFileSync(path.join(dir, 'data/zz'), 'new');
    const after = await walkCached(dir, state);
    expect(after.hashed).toEqual(['/data/a-a', '/data/a/a-b', '/data/many/f1023a', '/data/zz']);
    expect(after.fp.stats).toMatchObject({ hashed: 4, cacheHits: regular - 5 - 1 });
    const changed = after.fp.files.find((f) => f.path === '/data/a/a-b');
    expect(changed?.sha256).not.toBe(cold.fp.files.find((f) => f.path === '/data/a/a-b')?.sha256);
  });

  it('answers look-ups out of walk order too', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'qs-fpo-'));
    dirs.push(dir);
    const st = { dev: 1, ino: 2, size: 3, mtimeMs: 4.5, ctimeMs: 6.25 };
    const names = Array.from({ length: 3000 }, (_, i) => Buffer.from(`/d${i % 7}/f${i}`));
    const first = openStatCache(dir, '/root');
    names.forEach((n, i) => first.remember(n, { ...st, ino: i }, 'ab'.repeat(32), null));
    first.close();
    const again = openStatCache(dir, '/root');
    // Reverse, then every third: each step backwards or far ahead must still find its row.
    const order = [...names.keys()].reverse().concat([...names.keys()].filter((i) => i % 3 === 0));
    const misses = order.filter((i) => again.lookup(names[i]!, { ...st, ino: i })?.sha256 !== 'ab'.repeat(32));
    expect(again.lookup(Buffer.from('/d0/nothing'), st)).toBeUndefined();
    again.close();
    expect(misses).toEqual([]);
  });

  it('carries the rows of the layout keyed by plain paths over instead of re-hashing them', async () => {
    const { dir, regular } = buildTree();
    const state = path.join(dir, 'state');
    await walkCached(dir, state);
    // Put the rows back in the previous layout, as an agent before this one left them.
    const db = new Database(path.join(state, 'agent.db'));
    db.exec(`CREATE TABLE file_cache (root INTEGER NOT NULL, path BLOB NOT NULL, dev INTEGER NOT NULL, ino INTEGER NOT NULL,
      size INTEGER NOT NULL, mtime_ms REAL NOT NULL, ctime_ms REAL NOT NULL, sha256 BLOB NOT NULL, xattrs TEXT, PRIMARY KEY (root, path)) WITHOUT ROWID`);
    const rows = db.prepare('SELECT root, key, dev, ino, size, mtime_ms, ctime_ms, sha256, xattrs FROM file_digests').raw().all() as unknown[][];
    const put = db.prepare('INSERT INTO file_cache VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    for (const [root, key, ...rest] of rows) put.run(root, Buffer.from((key as Buffer).map((b) => (b === 0 ? 0x2f : b))), ...rest);
    db.exec('DROP TABLE file_digests');
    db.close();
    const warm = await walkCached(dir, state);
    expect(warm.fp.stats).toMatchObject({ hashed: 0, cacheHits: regular });
  });

  it('keys paths so that byte order is walk order', () => {
    const sorted = ['/a/b', '/a/b/c', '/a-b', '/a.b', '/a0'].map((p) => cacheKey(Buffer.from(p)));
    expect([...sorted].sort(Buffer.compare)).toEqual(sorted);
  });
});
