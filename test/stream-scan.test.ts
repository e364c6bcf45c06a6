// The streaming scan (manifest and walk merged path by path) against the in-memory differ on a
// real Debian root that drifted through a real apt-get install and hand edits.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPolicy } from '../shared/policy.js';
import { fileRecordSchema, manifestSchema, parseManifest } from '../shared/manifest.js';
import { diff, selectForVerification } from '../agent/diff/differ.js';
import { manifestFromObservation } from '../agent/manifest/build.js';
import { observe } from '../agent/fingerprint/observe.js';
import { openRoot } from '../agent/root.js';
import { scanRoot, scanSource } from '../agent/diff/scan.js';
import { verifyAgainstPackages } from '../agent/diff/verify.js';
import { isPlainFileRecord, isPlainManifestHeader, openManifestSource, writeManifestStream, memorySource } from '../agent/manifest/stream.js';
import { runAgentCli } from '../agent/cli.js';
import { prefetch } from '../agent/fingerprint/prefetch.js';
import type { Manifest } from '../shared/manifest.js';
import type { Finding } from '../shared/report.js';
import { CACHE_DIR, copyTree, ensureMinbase, ensureWithPackages } from './helpers/debian-root.js';

let minbaseManifest: Manifest;
let drifted: { dir: string; remove: () => void };
const tmp = mkdtempSync(path.join(CACHE_DIR, 'stream-scan-'));

beforeAll(async () => {
  const base = await openRoot(ensureMinbase());
  minbaseManifest = manifestFromObservation(await observe(base, defaultPolicy()), defaultPolicy(), { name: 'debian', version: '12' }, new Date('2026-01-01T00:00:00Z'));
  drifted = copyTree(ensureWithPackages());
  // Hand edits on top of the apt install: tampering, a setuid bit, a config edit, a removal,
  // and a name that is not UTF-8.
  writeFileSync(path.join(drifted.dir, 'usr/bin/ls'), 'not ls');
  chmodSync(path.join(drifted.dir, 'usr/bin/cat'), 0o4755);
  writeFileSync(path.join(drifted.dir, 'etc/issue'), 'hello');
  rmSync(path.join(drifted.dir, 'usr/bin/tac'));
  mkdirSync(path.join(drifted.dir, 'opt/x'));
  writeFileSync(Buffer.from(`${drifted.dir}/opt/x/caf\xe9`, 'latin1'), 'bytes');
}, 600_000);

afterAll(() => {
  drifted?.remove();
  rmSync(tmp, { recursive: true, force: true });
});

describe('the streaming scan', () => {
  it('finds exactly what the in-memory differ finds on a drifted Debian root', async () => {
    const root = await openRoot(drifted.dir);
    const obs = await observe(root, minbaseManifest.policy);
    const verdicts = await verifyAgainstPackages(root, selectForVerification(minbaseManifest, obs), obs.owned);
    const expected = diff(minbaseManifest, obs, verdicts);
    const report = await scanRoot(root, minbaseManifest);
    // The config files' text is the scan's last step, after the differ: compared without it.
    const withoutText = (fs: Finding[]): Finding[] => fs.map(({ text: _t, changes, ...f }) => (changes === undefined ? f : { ...f, changes: withoutText(changes) }));
    expect(withoutText(report.findings)).toEqual(expected);
    const kinds = new Set(report.findings.map((f) => f.kind));
    expect(kinds).toEqual(new Set(['package-added', 'file-modified', 'file-metadata', 'file-removed', 'file-added']));
  });

  it('gives the same findings from a manifest streamed off disk as from one in memory', async () => {
    const file = path.join(tmp, 'm.json.gz');
    const { files, ...header } = minbaseManifest;
    await writeManifestStream(file, header, memorySource(minbaseManifest).records());
    // Still one ordinary JSON document that any reader (and the schema) accepts.
    expect(parseManifest(JSON.parse(gunzipSync(readFileSync(file)).toString('utf8')), file).files).toHaveLength(files.length);
    const root = await openRoot(drifted.dir);
    const fromDisk = await scanSource(root, await openManifestSource(file), { now: () => new Date(0), hostname: 'h' });
    const inMemory = await scanRoot(root, minbaseManifest, { now: () => new Date(0), hostname: 'h' });
    expect(fromDisk.findings).toEqual(inMemory.findings);
  });

  it('refuses a streamed manifest that was cut short', async () => {
    const file = path.join(tmp, 'cut.json');
    const { files: _f, ...header } = minbaseManifest;
    await writeManifestStream(file, header, memorySource(minbaseManifest).records());
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.slice(0, Math.floor(text.length / 2)));
    const source = await openManifestSource(file);
    await expect(scanSource(await openRoot(drifted.dir), source)).rejects.toMatchObject({ code: 'MANIFEST_UNREADABLE' });
  });
});

describe('writing a streamed manifest', () => {
  it('fails with OUTPUT_UNWRITABLE and leaves nothing behind when the disk fills up', async () => {
    const small = mkdtempSync(path.join(tmp, 'full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', small]);
    try {
      const { files: _f, ...header } = minbaseManifest;
      await expect(writeManifestStream(path.join(small, 'm.json'), header, memorySource(minbaseManifest).records())).rejects.toMatchObject({ code: 'OUTPUT_UNWRITABLE' });
      expect(readdirSync(small)).toEqual([]);
    } finally {
      execFileSync('umount', [small]);
    }
  });

  it('passes a failure of the walk through as it is', async () => {
    const { files: _f, ...header } = minbaseManifest;
    const failing = async function* (): AsyncGenerator<never[]> {
      yield [];
      throw new Error('walk broke');
    };
    await expect(writeManifestStream(path.join(tmp, 'x.json'), header, failing())).rejects.toThrow('walk broke');
    expect(readdirSync(tmp).filter((n) => n.startsWith('x.json'))).toEqual([]);
  });
});

describe('manifest then scan from the command line, with a state folder', () => {
  it('seeds the stat cache with the manifest run so the first scan reads nothing', async () => {
    const state = path.join(tmp, 'state');
    const out = path.join(tmp, 'cli.json.gz');
    const err: string[] = [];
    const io = { stdout: () => {}, stderr: (t: string) => void err.push(t), interactive: false };
    expect(await runAgentCli(['manifest', '--root', ensureMinbase(), '--out', out, '--state', state, '--max-bytes-rate', '2G', '--max-rate', '1M'], io)).toBe(0);
    const json: string[] = [];
    const code = await runAgentCli(['scan', '--root', ensureMinbase(), '--manifest', out, '--state', state, '--json'], { ...io, stdout: (t) => void json.push(t) });
    expect(err.join('')).not.toMatch(/error/);
    expect(code).toBe(0);
    const report = JSON.parse(json.join('')) as { stats: { bytesHashed: number }; summary: { status: string } };
    expect(report.summary.status).toBe('clean');
    expect(report.stats.bytesHashed).toBe(0);
  });

  it('rejects a budget it cannot read', async () => {
    const err: string[] = [];
    const code = await runAgentCli(['scan', '--root', '/', '--manifest', 'x', '--max-bytes-rate', 'fast'], { stdout: () => {}, stderr: (t) => void err.push(t), interactive: false });
    expect(code).toBe(2);
    expect(err.join('')).toContain('--max-bytes-rate expects a number');
  });
});

describe('the fast record check', () => {
  it('passes only records the manifest schema passes, and the common ones', () => {
    const good = { path: '/usr/bin/x', type: 'file', mode: '0755', uid: 0, gid: 0, size: 3, sha256: 'a'.repeat(64), owner: { ecosystem: 'dpkg', name: 'x' } };
    // Over the schema's bounds (shared/limits.ts): the schema refuses them, so must the hand check.
    const overBounds = [{ ...good, path: `/${'x'.repeat(4096)}` }, { ...good, target: 'x'.repeat(4097) }, { ...good, owner: { ecosystem: 'dpkg', name: 'x'.repeat(1025) } }];
    for (const v of overBounds) expect(fileRecordSchema.safeParse(v).success).toBe(false);
    const variants: unknown[] = [
      good,
      { path: '/l', type: 'symlink', mode: '0777', uid: 1, gid: 2, target: 'x' },
      { ...good, path: 'relative' },
      { ...good, mode: '755' },
      { ...good, uid: -1 },
      { ...good, gid: 1.5 },
      { ...good, size: 2 ** 60 },
      { ...good, sha256: 'A'.repeat(64) },
      { ...good, type: 'door' },
      { ...good, extra: 1 },
      { ...good, owner: { ecosystem: 'dpkg', name: '' } },
      { ...good, owner: { ecosystem: 'winget', name: 'x' } },
      { ...good, owner: { ecosystem: 'dpkg', name: 'x', more: 1 } },
      { ...good, rawPath: Buffer.from('/x').toString('base64') },
      { ...good, target: 5 },
      { ...good, selinux: '' },
      { ...good, selinux: 'x'.repeat(4097) },
      { ...good, selinux: 7 },
      // Rare security xattrs take the schema's path, even when valid.
      { ...good, capability: { effective: true, permitted: ['cap_net_raw'], inheritable: [] } },
      { ...good, ima: '0302' },
      ...overBounds,
      JSON.parse('{"__proto__": {"x": 1}, "path": "/a", "type": "dir", "mode": "0755", "uid": 0, "gid": 0}'),
      null,
      [],
      { ...good, text: 'x'.repeat(256 * 1024 + 1) },
      { ...good, text: 7 },
      { ...good, noText: 'lost' },
      { ...good, selinux: 'system_u:object_r:bin_t:s0' },
      // Config files carry their text, or why not: common on every host, checked here too.
      { ...good, text: 'PermitRootLogin no\n' },
      { ...good, text: '' },
      { ...good, noText: 'secret' },
    ];
    const passed = variants.filter((v) => isPlainFileRecord(v));
    expect(passed).toEqual([variants[0], variants[1], ...variants.slice(-4)]);
    for (const v of passed) expect(fileRecordSchema.safeParse(v).success).toBe(true);
  });
});

describe('the fast header check', () => {
  it('passes only headers the manifest schema passes, and the ones this agent writes', () => {
    const good = {
      schema: 'quicksand.manifest/v1',
      image: { name: 'debian', version: '12', createdAt: '2026-11-30T00:00:00.000Z', source: 'root' },
      policy: { tracked: ['/usr', '/etc'], ignored: ['/var/tmp'], mutable: ['/etc/hostname'] },
      packages: [{ ecosystem: 'dpkg', name: 'bash', version: '5.2.15-2+b7', arch: 'amd64' }, { ecosystem: 'pip', name: 'x', version: '1' }],
      files: [],
    };
    const overBounds = [
      { ...good, image: { ...good.image, name: 'x'.repeat(1025) } },
      { ...good, policy: { ...good.policy, ignored: [`/${'x'.repeat(4096)}`] } },
      { ...good, packages: [{ ecosystem: 'dpkg', name: 'x', version: '1', arch: 'x'.repeat(101) }] },
    ];
    for (const v of overBounds) expect(manifestSchema.safeParse(v).success).toBe(false);
    const variants: unknown[] = [
      good,
      { ...good, schema: 'quicksand.manifest/v2' },
      { ...good, image: { ...good.image, createdAt: '2026-11-30' } },
      { ...good, image: { ...good.image, createdAt: '2026-02-30T00:00:00.000Z' } },
      { ...good, image: { ...good.image, source: 'docker' } },
      { ...good, image: { ...good.image, name: '' } },
      { ...good, image: { ...good.image, extra: 1 } },
      { ...good, policy: { ...good.policy, tracked: ['usr'] } },
      { ...good, policy: { tracked: ['/usr'], ignored: [] } },
      { ...good, packages: [{ ecosystem: 'winget', name: 'x', version: '1' }] },
      { ...good, packages: [{ ecosystem: 'dpkg', name: 'x', version: '' }] },
      { ...good, packages: [{ ecosystem: 'dpkg', name: 'x', version: '1', arch: 3 }] },
      { ...good, packages: [{ ecosystem: 'dpkg', name: 'x', version: '1', epoch: 1 }] },
      { ...good, files: [{ path: '/x' }] },
      { ...good, more: true },
      JSON.parse(`{"__proto__": {"x": 1}, ${JSON.stringify(good).slice(1)}`),
      (({ policy: _p, ...rest }) => rest)(good),
      ...overBounds,
      null,
    ];
    const passed = variants.filter((v) => isPlainManifestHeader(v));
    expect(passed).toEqual([variants[0]]);
    for (const v of passed) expect(manifestSchema.safeParse(v).success).toBe(true);
    // What the fast check sends on to the schema is still judged there: a header without a
    // policy is valid (defaults apply), one of another version is not.
    expect(manifestSchema.safeParse(variants[16]).success).toBe(true);
    expect(manifestSchema.safeParse(variants[1]).success).toBe(false);
  });
});

describe('the walk order', () => {
  it('compares record paths as the walk visits them, on strings and on raw bytes alike', async () => {
    const { comparePathBytes, compareRecordPaths } = await import('../agent/fingerprint/walk.js');
    const paths = ['/a', '/a/b', '/a-b', '/a.b', '/a/b/c', '/ab', '/é', '/\uffff', '/\u{1F600}', '/z', '/a/\u{1F600}x', '/a/\uffffx'];
    const recs = [...paths.map((p) => ({ path: p })), { path: '/a/\ufffd', rawPath: Buffer.from([0x2f, 0x61, 0x2f, 0xff]).toString('base64') }];
    const bytes = (r: { path: string; rawPath?: string }): Buffer => (r.rawPath ? Buffer.from(r.rawPath, 'base64') : Buffer.from(r.path));
    for (const a of recs) for (const b of recs) expect(Math.sign(compareRecordPaths(a, b))).toBe(Math.sign(comparePathBytes(bytes(a), bytes(b))));
    // Depth first: a folder's whole subtree before its next sibling.
    expect([...recs].sort(compareRecordPaths).map((r) => r.path).slice(0, 5)).toEqual(['/a', '/a/b', '/a/b/c', '/a/\uffffx', '/a/\u{1F600}x']); // UTF-8: EF BF BF before F0 9F 98 80
  });
});

describe('a walk started ahead of its reader', () => {
  it('runs ahead up to its limit while the reader waits, then hands everything on in order', async () => {
    let produced = 0;
    let ended = false;
    const source = async function* (): AsyncGenerator<number[]> {
      try {
        for (let i = 0; i < 10; i++) {
          produced++;
          yield [i * 2, i * 2 + 1];
          await new Promise((r) => setImmediate(r));
        }
      } finally {
        ended = true;
      }
    };
    let release!: () => void;
    const until = new Promise<void>((r) => (release = r));
    const walk = prefetch(source(), until, 6);
    await new Promise((r) => setTimeout(r, 50));
    expect(produced).toBe(3); // 6 items, then it waits for the reader
    release();
    const got: number[] = [];
    for await (const batch of walk) got.push(...batch);
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(ended).toBe(true);
  });

  it('ends the walk when it is closed unread', async () => {
    let ended = false;
    const source = async function* (): AsyncGenerator<number[]> {
      try {
        for (;;) {
          yield [1];
          await new Promise((r) => setImmediate(r));
        }
      } finally {
        ended = true;
      }
    };
    const walk = prefetch(source(), Promise.reject(new Error('packages unreadable')), 100);
    await walk.close();
    expect(ended).toBe(true);
  });
});
