import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { FileRecord, Manifest } from '../../shared/manifest.js';
import { defaultPolicy } from '../../shared/policy.js';
import { dropManifestIndexes, memoryIndex, openManifestIndex } from './index-db.js';
import { loadIndexIsolated } from '../daemon/index-loader.js';
import { openStateDb } from '../state-db.js';
import { writeManifestFile } from './io.js';
import { memorySource, writeManifestStream } from './stream.js';

const dir = mkdtempSync(path.join(tmpdir(), 'qs-index-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const owner = { ecosystem: 'dpkg' as const, name: 'coreutils' };
const files: FileRecord[] = [
  { path: '/usr', type: 'dir', mode: '0755', uid: 0, gid: 0 },
  { path: '/usr/bin', type: 'dir', mode: '0755', uid: 0, gid: 0 },
  { path: '/usr/bin/ls', type: 'file', mode: '0755', uid: 0, gid: 0, size: 3, sha256: 'a'.repeat(64), owner },
  { path: '/usr/bin/sh', type: 'symlink', mode: '0777', uid: 0, gid: 0, target: 'dash' },
  { path: '/usr/bin-extra', type: 'file', mode: '0644', uid: 0, gid: 0, size: 1, sha256: 'b'.repeat(64) },
  { path: '/usr/lib', type: 'dir', mode: '0755', uid: 0, gid: 0 },
  { path: '/usr/lib/x', type: 'file', mode: '0644', uid: 0, gid: 0, size: 1, sha256: 'c'.repeat(64), owner },
];
const manifest: Manifest = {
  schema: 'quicksand.manifest/v1',
  image: { name: 'x', version: '1', createdAt: '2026-12-01T00:00:00.000Z', source: 'root' },
  policy: defaultPolicy(),
  packages: [{ ecosystem: 'dpkg', name: 'coreutils', version: '9.1' }],
  files,
};

describe('the manifest index in the state database', () => {
  it('answers exactly as the manifest in memory does, from a streamed and a one-line file', async () => {
    const { files: _f, ...header } = manifest;
    const streamed = path.join(dir, 'streamed.json.gz');
    await writeManifestStream(streamed, header, memorySource(manifest).records());
    const plain = path.join(dir, 'plain.json');
    await writeManifestFile(plain, manifest);
    const db = new Database(path.join(dir, 'state.db'));
    const mem = memoryIndex(manifest);
    for (const file of [streamed, plain]) {
      const index = await openManifestIndex(db, file);
      expect(index.header).toEqual(mem.header);
      expect(index.packageOnly).toBe(false);
      for (const [paths, subtrees] of [[['/usr/bin/ls'], []], [[], ['/usr/bin']], [[], ['/']], [['/nope'], ['/usr/lib']], [[], []]] as Array<[string[], string[]]>) {
        expect(index.cut(paths, subtrees).files).toEqual(mem.cut(paths, subtrees).files);
      }
      // `/usr/bin-extra` is beside `/usr/bin`, not below it.
      expect(index.cut([], ['/usr/bin']).files.map((f) => f.path)).toEqual(['/usr', '/usr/bin', '/usr/bin/ls', '/usr/bin/sh']);
      expect(index.typeOf('/usr/lib')).toBe('dir');
      expect(index.typeOf('/usr/bin/ls')).toBe('file');
      expect(index.typeOf('/nope')).toBeUndefined();
      expect(index.ownedBy(new Set(['dpkg:coreutils'])).sort()).toEqual(['/usr/bin/ls', '/usr/lib/x']);
    }
    db.close();
  });

  it('loads a manifest file again when it changed, and reads a package-only one as such', async () => {
    const file = path.join(dir, 'changing.json');
    const db = new Database(path.join(dir, 'state2.db'));
    await writeManifestFile(file, manifest);
    expect((await openManifestIndex(db, file)).typeOf('/usr/lib/x')).toBe('file');
    await writeManifestFile(file, { ...manifest, files: [] });
    const packageOnly = await openManifestIndex(db, file);
    expect(packageOnly.packageOnly).toBe(true);
    expect(packageOnly.typeOf('/usr/lib/x')).toBeUndefined();
    expect(packageOnly.cut([], ['/']).files).toEqual([]);
    db.close();
  });

  it('drops the indexes of the manifest files it is not told to keep, their records with them', async () => {
    const db = new Database(path.join(dir, 'state3.db'));
    const [a, b, c] = ['a.json', 'b.json', 'c.json'].map((n) => path.join(dir, n));
    for (const f of [a!, b!, c!]) {
      await writeManifestFile(f, manifest);
      await openManifestIndex(db, f);
    }
    const records = (): number => (db.prepare('SELECT count(*) FROM manifest_records').pluck().get() as number);
    expect(records()).toBe(3 * files.length);
    expect(dropManifestIndexes(db, [a!, c!])).toEqual([b]);
    expect(db.prepare('SELECT file FROM manifest_index ORDER BY file').pluck().all()).toEqual([a, c]);
    expect(records()).toBe(2 * files.length);
    // What is kept still answers.
    expect((await openManifestIndex(db, c!)).typeOf('/usr/bin/ls')).toBe('file');
    expect(dropManifestIndexes(db, [a!, c!])).toEqual([]);
    db.close();
  });

  it('is loaded by a child process, so the daemon opens it without loading', async () => {
    const state = path.join(dir, 'child-state');
    const file = path.join(dir, 'child.json');
    await writeManifestFile(file, manifest);
    await loadIndexIsolated(state, file);
    const db = openStateDb(state);
    expect(db.prepare('SELECT count FROM manifest_index WHERE file = ?').pluck().get(file)).toBe(files.length);
    expect((await openManifestIndex(db, file)).ownedBy(new Set(['dpkg:coreutils'])).sort()).toEqual(['/usr/bin/ls', '/usr/lib/x']);
    db.close();
    await expect(loadIndexIsolated(state, path.join(dir, 'missing.json'))).rejects.toThrow(/loading the manifest index of .*missing\.json failed \(exit 1\): .*ENOENT/);
  });
});
