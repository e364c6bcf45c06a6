// The package cache (agent/collect/cache.ts): the package databases' parsed result is reused
// only while every path the collectors touched keeps its stat, on a real tree with a real dpkg
// database and the agent's real SQLite state database. A change the stat shows (a new mtime at
// the same size; the same mtime with new content, so a new ctime only) must be read again.
import { mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { openPackageCache } from '../agent/collect/cache.js';
import type { PackageCache } from '../agent/collect/cache.js';
import { collectPackages } from '../agent/fingerprint/observe.js';
import type { CollectedAll } from '../agent/fingerprint/observe.js';
import { openRoot } from '../agent/root.js';
import type { Root } from '../agent/root.js';
import { scanSource } from '../agent/diff/scan.js';
import { memorySource } from '../agent/manifest/stream.js';
import { observe } from '../agent/fingerprint/observe.js';
import { manifestFromObservation } from '../agent/manifest/build.js';
import { defaultPolicy } from '../shared/policy.js';
import { CACHE_DIR } from './helpers/debian-root.js';

const tmp = mkdtempSync(path.join(CACHE_DIR, 'package-cache-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function stanza(name: string, version: string): string {
  return `Package: ${name}\nStatus: install ok installed\nVersion: ${version}\nArchitecture: amd64\n\n`;
}

let n = 0;
/** A root with a dpkg database of `tool` 1.0 and `lib` 2.0, and the files they list. */
function makeRoot(): { dir: string; state: string; status: string } {
  const dir = path.join(tmp, `root-${++n}`);
  const info = path.join(dir, 'var/lib/dpkg/info');
  mkdirSync(info, { recursive: true });
  mkdirSync(path.join(dir, 'usr/bin'), { recursive: true });
  mkdirSync(path.join(dir, 'usr/lib'), { recursive: true });
  writeFileSync(path.join(dir, 'usr/bin/tool'), 'tool\n');
  writeFileSync(path.join(dir, 'usr/lib/lib.so'), 'lib\n');
  const status = path.join(dir, 'var/lib/dpkg/status');
  writeFileSync(status, stanza('tool', '1.0') + stanza('lib', '2.0'));
  writeFileSync(path.join(info, 'tool.list'), '/.\n/usr\n/usr/bin\n/usr/bin/tool\n');
  writeFileSync(path.join(info, 'lib.list'), '/.\n/usr\n/usr/lib\n/usr/lib/lib.so\n');
  return { dir, state: path.join(dir, '..', `state-${n}`), status };
}

/** The packages through the cache, and whether the collectors really ran. */
async function viaCache(cache: PackageCache, root: Root): Promise<{ got: CollectedAll; ran: boolean }> {
  let ran = false;
  const got = await cache.collect(root, (tracked) => {
    ran = true;
    return collectPackages(tracked);
  });
  return { got, ran };
}

const WHOLE_SECOND = 1_700_000_000;
const versions = (c: CollectedAll): string[] => c.packages.map((p) => `${p.name}=${p.version}`).sort();

// The cache's racy window is shortened: these trees were written a moment ago. Every change is
// made a few ms after the last one, so its ctime is another tick of the kernel's clock.
describe('package cache', () => {
  let tree: ReturnType<typeof makeRoot>;
  let cache: PackageCache;
  beforeEach(async () => {
    tree = makeRoot();
    await sleep(20);
    cache = openPackageCache(tree.state, tree.dir, { racyMs: 0 });
    return () => cache.close();
  });

  it('reuses the parsed databases while nothing they read changed, and holds what a fresh read holds', async () => {
    const root = await openRoot(tree.dir);
    const first = await viaCache(cache, root);
    expect(first.ran).toBe(true);
    expect(cache.last).toBe('read');
    const second = await viaCache(cache, root);
    expect(second.ran).toBe(false);
    expect(cache.last).toBe('hit');
    expect(second.got).toEqual(await collectPackages(root));
    expect(versions(second.got)).toEqual(['lib=2.0', 'tool=1.0']);
    expect(second.got.owned.get('/usr/bin/tool')?.owner.name).toBe('tool');
  });

  it('reads again when the status file has the same size and a new mtime', async () => {
    const root = await openRoot(tree.dir);
    await viaCache(cache, root);
    const before = statSync(tree.status);
    await sleep(20);
    writeFileSync(tree.status, stanza('tool', '1.1') + stanza('lib', '2.0'));
    expect(statSync(tree.status).size).toBe(before.size);
    const again = await viaCache(cache, root);
    expect(again.ran).toBe(true);
    expect(versions(again.got)).toEqual(['lib=2.0', 'tool=1.1']);
  });

  it('reads again when the status file keeps its size and mtime but not its content (only ctime moves)', async () => {
    const root = await openRoot(tree.dir);
    // A whole second: utimes takes it back exactly (a double of seconds cannot hold every ns).
    utimesSync(tree.status, WHOLE_SECOND, WHOLE_SECOND);
    await sleep(20);
    await viaCache(cache, root);
    const before = statSync(tree.status, { bigint: true });
    await sleep(20);
    writeFileSync(tree.status, stanza('tool', '1.0') + stanza('lib', '2.1'));
    // The old mtime put back, as `touch -r` or a restore from backup does: ctime alone moved.
    utimesSync(tree.status, WHOLE_SECOND, WHOLE_SECOND);
    const after = statSync(tree.status, { bigint: true });
    expect(after.mtimeNs).toBe(before.mtimeNs);
    expect(after.size).toBe(before.size);
    expect(after.ctimeNs).not.toBe(before.ctimeNs);
    const again = await viaCache(cache, root);
    expect(again.ran).toBe(true);
    expect(versions(again.got)).toEqual(['lib=2.1', 'tool=1.0']);
  });

  it('reads again when a package file list changes, and when a file it looked for and missed appears', async () => {
    const root = await openRoot(tree.dir);
    await viaCache(cache, root);
    await sleep(20);
    writeFileSync(path.join(tree.dir, 'var/lib/dpkg/info/tool.list'), '/.\n/usr\n/usr/bin\n/usr/bin/TOOL\n');
    const listed = await viaCache(cache, root);
    expect(listed.ran).toBe(true);
    expect(listed.got.owned.has('/usr/bin/TOOL')).toBe(true);
    expect(listed.got.owned.has('/usr/bin/tool')).toBe(false);
    expect((await viaCache(cache, root)).ran).toBe(false);
    // dpkg-divert's database was absent: the collector asked for it all the same.
    await sleep(20);
    writeFileSync(path.join(tree.dir, 'var/lib/dpkg/diversions'), '/usr/bin/tool\n/usr/bin/tool.distrib\n:\n');
    const diverted = await viaCache(cache, root);
    expect(diverted.ran).toBe(true);
    expect(diverted.got).toEqual(await collectPackages(root));
  });

  it('reads again when another agent build reads (its collectors may parse otherwise)', async () => {
    const root = await openRoot(tree.dir);
    await viaCache(cache, root);
    // The code's own files are part of what a result is valid for: touch one of them.
    const own = new URL('../agent/collect/dpkg.ts', import.meta.url);
    const st = statSync(own);
    utimesSync(own, st.atime, new Date(st.mtimeMs + 1000));
    try {
      expect((await viaCache(cache, root)).ran).toBe(true);
    } finally {
      utimesSync(own, st.atime, st.mtime);
    }
  });

  it('does not remember a read of files changed within the racy window', async () => {
    const strict = openPackageCache(tree.state, tree.dir);
    try {
      const root = await openRoot(tree.dir);
      writeFileSync(tree.status, stanza('tool', '1.0') + stanza('lib', '2.0'));
      expect((await viaCache(strict, root)).ran).toBe(true);
      expect(strict.last).toBe('read-not-stored');
      expect((await viaCache(strict, root)).ran).toBe(true);
    } finally {
      strict.close();
    }
  });

  it('a scan through the cache sees the new package set after the status file changed', async () => {
    const root = await openRoot(tree.dir);
    utimesSync(tree.status, WHOLE_SECOND, WHOLE_SECOND);
    await sleep(20);
    const policy = defaultPolicy();
    const manifest = manifestFromObservation(await observe(root, policy), policy, { name: 'tiny', version: '1' }, new Date('2026-01-01T00:00:00Z'));
    const scan = async () => scanSource(root, memorySource(manifest), { packages: cache, hostname: 'h' });
    const clean = await scan();
    expect(cache.last).toBe('read');
    expect(clean.findings.filter((f) => f.kind.startsWith('package'))).toEqual([]);
    expect((await scan()).findings).toEqual(clean.findings);
    expect(cache.last).toBe('hit');
    await sleep(20);
    writeFileSync(tree.status, stanza('tool', '1.9') + stanza('lib', '2.0'));
    utimesSync(tree.status, WHOLE_SECOND, WHOLE_SECOND);
    const drifted = await scan();
    expect(cache.last).toBe('read');
    expect(drifted.findings.filter((f) => f.kind.startsWith('package')).map((f) => [f.kind, f.name, f.before, f.after])).toEqual([['package-changed', 'tool', '1.0', '1.9']]);
  });
});
