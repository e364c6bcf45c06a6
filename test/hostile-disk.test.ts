// The collectors against damaged package databases made by the real tools: an rpmdb built with
// rpm and cut short, a Packages.db this machine's rpm cannot read, a real dpkg status cut
// mid-stanza, unreadable dpkg info files, a real pip RECORD with lines that are not records.
// Damage must become a warning naming the file, never a silent loss, and never a write.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRpmDatabase, rpmCollector } from '../agent/collect/rpm.js';
import { openRoot } from '../agent/root.js';
import { buildRpm, initRpmRoot, rpmInRoot } from './helpers/rpm-root.js';
import { diffSnapshots, snapshot } from './helpers/tree-snapshot.js';

const work = mkdtempSync(path.join(tmpdir(), 'qs-hostile-disk-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('rpm collector on a damaged database', () => {
  const rpms: string[] = [];
  beforeAll(() => {
    for (const i of [1, 2, 3]) rpms.push(buildRpm({ name: `qs-p${i}`, version: `1.${i}`, files: { [`/usr/bin/qs-p${i}`]: 'x'.repeat(20_000 * i) } }, path.join(work, 'rpms')));
  });

  function realRoot(name: string): string {
    const root = path.join(work, name);
    initRpmRoot(root);
    rpmInRoot(root, ['-i', '--nodeps', ...rpms]);
    return root;
  }

  it('warns RPMDB_UNREADABLE for a real rpmdb cut short, and leaves the root byte for byte as it was', async () => {
    for (const keep of [0, 0.5]) {
      const root = realRoot(`cut-${keep}`);
      const db = path.join(root, 'var/lib/rpm/rpmdb.sqlite');
      truncateSync(db, Math.floor((statSync(db).size * keep) / 4096) * 4096);
      const before = snapshot(root);
      const got = (await rpmCollector.collect(await openRoot(root)))!;
      expect(diffSnapshots(before, snapshot(root))).toEqual([]);
      expect(got.packages).toEqual([]);
      expect(got.warnings).toEqual([{ code: 'RPMDB_UNREADABLE', path: '/var/lib/rpm/rpmdb.sqlite', message: expect.stringMatching(/^cannot read the rpm database: /) }]);
    }
  });

  it('never lets rpm write into the root for a Packages.db it cannot read (ndb, garbage), and says so', async () => {
    // ndb's header: magic, version 0, generation, slot pages; then slots this rpm has no backend for.
    const ndb = Buffer.concat([Buffer.from('RpmP'), Buffer.alloc(28), randomBytes(8192)]);
    ndb.writeUInt32LE(1, 12);
    for (const [name, content, why] of [
      ['ndb', ndb, /it is an ndb database, which this machine's rpm cannot read/],
      ['garbage', randomBytes(16384), /it is damaged or in a format this machine's rpm cannot read/],
    ] as const) {
      const root = path.join(work, `legacy-${name}`);
      mkdirSync(path.join(root, 'var/lib/rpm'), { recursive: true });
      writeFileSync(path.join(root, 'var/lib/rpm/Packages.db'), content);
      const before = snapshot(root);
      const got = (await rpmCollector.collect(await openRoot(root)))!;
      // rpm itself, run on the root, creates rpmdb.sqlite, -shm and -wal beside the file.
      expect(diffSnapshots(before, snapshot(root))).toEqual([]);
      expect(got.packages).toEqual([]);
      expect(got.warnings).toEqual([{ code: 'RPMDB_UNREADABLE', path: '/var/lib/rpm/Packages.db', message: expect.stringMatching(why) }]);
      expect(got.warnings[0]!.message).toMatch(/read no package from this \d+-byte database.*rpm packages not checked$/);
    }
  });

  it('asks rpm about a private copy of the database folder, and gets every package from a real one', async () => {
    const root = realRoot('query-copy');
    const before = snapshot(root);
    const rpm = execFileSync('sh', ['-c', 'command -v rpm'], { encoding: 'utf8' }).trim();
    const got = await queryRpmDatabase(rpm, path.join(root, 'var/lib/rpm'));
    expect(got.packages.map((p) => `${p.name} ${p.version}`).sort()).toEqual(['qs-p1 1.1-1', 'qs-p2 1.2-1', 'qs-p3 1.3-1']);
    expect(got.packages.find((p) => p.name === 'qs-p2')!.files).toEqual([expect.objectContaining({ path: '/usr/bin/qs-p2', digest: expect.objectContaining({ algo: 'sha256' }) })]);
    expect(diffSnapshots(before, snapshot(root))).toEqual([]);
  });
});
