import { appendFileSync, chmodSync, chownSync, mkdirSync, symlinkSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUERY_FORMAT, parseRpmHeader, parseRpmQueryOutput, rpmCollector, rpmPackageFromHeader } from '../agent/collect/rpm.js';
import { manifestFromObservation } from '../agent/manifest/build.js';
import { manifestFromKiwi, parseKiwiPackages } from '../agent/manifest/import-kiwi.js';
import { observe } from '../agent/fingerprint/observe.js';
import { openRoot } from '../agent/root.js';
import { scanRoot } from '../agent/diff/scan.js';
import { defaultPolicy } from '../shared/policy.js';
import type { Manifest } from '../shared/manifest.js';
import { buildRpm, initRpmRoot, rpmInRoot } from './helpers/rpm-root.js';

const work = mkdtempSync(path.join(tmpdir(), 'qs-rpm-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const rpms: Record<string, string> = {};
beforeAll(() => {
  const out = path.join(work, 'rpms');
  rpms.tool1 = buildRpm({ name: 'qs-tool', version: '1.0', epoch: 2, files: { '/usr/bin/qs-tool': 'echo one', '/etc/qs-tool.conf': 'level=1' } }, out);
  rpms.tool2 = buildRpm({ name: 'qs-tool', version: '1.1', epoch: 2, files: { '/usr/bin/qs-tool': 'echo two', '/etc/qs-tool.conf': 'level=1' } }, out);
  rpms.lib = buildRpm({ name: 'qs-lib', version: '3.2', release: '7', files: { '/usr/lib/qs/libqs.so': 'binary', '/usr/share/qs/data': 'data' }, links: { '/usr/lib/qs/libqs.so.3': 'libqs.so' } }, out);
  rpms.gone = buildRpm({ name: 'qs-gone', version: '0.9', files: { '/usr/bin/qs-gone': 'echo gone' } }, out);
});

function freshRoot(name: string): string {
  const root = path.join(work, name);
  mkdirSync(path.join(root, 'usr'), { recursive: true });
  initRpmRoot(root);
  rpmInRoot(root, ['-i', '--nodeps', rpms.tool1!, rpms.lib!, rpms.gone!]);
  return root;
}

function snapshot(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .map((f) => {
      const st = statSync(path.join(dir, f));
      return `${f} ${st.size} ${st.mtimeMs}`;
    });
}

describe('rpm collector on a real sqlite rpmdb', () => {
  it('reads packages, epochs, file digests and config flags from the header blobs', async () => {
    const root = freshRoot('read');
    const got = (await rpmCollector.collect(await openRoot(root)))!;
    expect(got.warnings).toEqual([]);
    expect(got.packages.map((p) => `${p.name} ${p.version} ${p.arch}`).sort()).toEqual(['qs-gone 0.9-1 noarch', 'qs-lib 3.2-7 noarch', 'qs-tool 2:1.0-1 noarch']);
    // The same facts as rpm itself prints them.
    const rpmSays = rpmInRoot(root, ['-q', '--qf', '[%{FILENAMES} %{FILEDIGESTS} %{FILEFLAGS} %{FILEMODES:octal}\n]', 'qs-tool']).trim().split('\n');
    expect(rpmSays).toHaveLength(2);
    for (const line of rpmSays) {
      const [file, digest, flags, mode] = line.split(' ');
      expect(got.owned.get(file!)).toEqual({ owner: { ecosystem: 'rpm', name: 'qs-tool' }, conffile: (Number(flags) & 1) === 1, digest: { algo: 'sha256', hex: digest }, mode: mode!.slice(-4) });
    }
    const tids = rpmInRoot(root, ['-qa', '--qf', '%{INSTALLTID}\n']).trim().split('\n');
    expect(new Set(tids).size).toBe(1);
    expect(got.changeSets).toEqual([expect.objectContaining({ id: `rpm:${tids[0]}`, tool: 'rpm', events: expect.arrayContaining([expect.objectContaining({ name: 'qs-lib', after: '3.2-7' })]) })]);
  });

  it('never writes beside the database, even though rpm left it in WAL mode', async () => {
    const root = freshRoot('readonly');
    const dbDir = path.join(root, 'var/lib/rpm');
    const before = snapshot(dbDir);
    await rpmCollector.collect(await openRoot(root));
    expect(snapshot(dbDir)).toEqual(before);
  });

  it('parses the output of the rpm binary to the same packages as the headers (the bdb/ndb fallback)', async () => {
    const root = freshRoot('fallback');
    const headers = (await rpmCollector.collect(await openRoot(root)))!;
    const db = new Database(path.join(root, 'var/lib/rpm/rpmdb.sqlite'), { readonly: true });
    const blobs = db.prepare('SELECT blob FROM Packages').pluck().all() as Buffer[];
    db.close();
    const fromHeaders = blobs.map((b) => rpmPackageFromHeader(parseRpmHeader(b)));
    const fromBinary = parseRpmQueryOutput(rpmInRoot(root, ['-qa', '--qf', QUERY_FORMAT]));
    const key = (ps: typeof fromHeaders) => ps.map((p) => ({ ...p, files: p.files.map((f) => ({ ...f })) })).sort((a, b) => a.name.localeCompare(b.name));
    expect(key(fromBinary)).toEqual(key(fromHeaders));
    expect(headers.packages).toHaveLength(3);
  });

  it('warns "unsupported rpm database" for a BerkeleyDB database it cannot read, and reports no finding for it', async () => {
    const root = path.join(work, 'bdb');
    mkdirSync(path.join(root, 'var/lib/rpm'), { recursive: true });
    // A BerkeleyDB hash file starts with its magic at offset 12; rpm here has no bdb backend.
    const bdb = Buffer.alloc(4096);
    bdb.writeUInt32LE(0x00061561, 12);
    writeFileSync(path.join(root, 'var/lib/rpm/Packages'), bdb);
    const got = (await rpmCollector.collect(await openRoot(root)))!;
    expect(got.packages).toEqual([]);
    expect(got.warnings).toEqual([expect.objectContaining({ code: 'RPMDB_UNSUPPORTED', message: expect.stringContaining('unsupported rpm database') })]);
  });

  it('turns a damaged header into a warning naming it, and keeps the other packages', async () => {
    const root = freshRoot('damaged');
    const dbFile = path.join(root, 'var/lib/rpm/rpmdb.sqlite');
    const db = new Database(dbFile);
    db.prepare('UPDATE Packages SET blob = ? WHERE hnum = (SELECT MIN(hnum) FROM Packages)').run(Buffer.from([0, 0, 0, 9, 0, 0, 1, 0, 1, 2]));
    db.close();
    const got = (await rpmCollector.collect(await openRoot(root)))!;
    expect(got.packages).toHaveLength(2);
    expect(got.warnings).toEqual([expect.objectContaining({ code: 'RPMDB_HEADER_INVALID', message: expect.stringMatching(/^package header 1: header claims 9 entries/) })]);
    expect(() => parseRpmHeader(Buffer.from([1, 2, 3]))).toThrow(/shorter than its 8-byte preamble/);
  });
});

describe('scanning an rpm host', () => {
  let manifest: Manifest;
  let root: string;
  beforeAll(async () => {
    root = freshRoot('drift');
    const policy = defaultPolicy();
    manifest = manifestFromObservation(await observe(await openRoot(root), policy), policy, { name: 'el', version: '1' }, new Date());
    await new Promise((r) => setTimeout(r, 1100)); // a later second: a separate rpm transaction id
    rpmInRoot(root, ['-U', '--nodeps', rpms.tool2!]);
    rpmInRoot(root, ['-e', '--nodeps', 'qs-gone']);
    appendFileSync(path.join(root, 'usr/lib/qs/libqs.so'), 'implant');
  });

  it('reports the upgrade and the erase as one finding each, and the tampered library as critical', async () => {
    const report = await scanRoot(await openRoot(root), manifest, { hostname: 'el' });
    const shape = report.findings.map((f) => [f.kind, f.severity, f.name ?? f.path, f.before, f.after]);
    expect(shape).toEqual(
      expect.arrayContaining([
        ['package-changed', 'high', 'qs-tool', '2:1.0-1', '2:1.1-1'],
        ['package-removed', 'high', 'qs-gone', '0.9-1', undefined],
        ['file-modified', 'critical', '/usr/lib/qs/libqs.so', expect.any(String), expect.any(String)],
      ]),
    );
    expect(shape).toHaveLength(3);
    const upgrade = report.findings.find((f) => f.name === 'qs-tool')!;
    expect(upgrade.changes?.map((c) => c.path)).toEqual(['/usr/bin/qs-tool']);
    const tid = rpmInRoot(root, ['-q', '--qf', '%{INSTALLTID}', 'qs-tool']);
    expect(upgrade.changeSet).toBe(`rpm:${tid}`);
    expect(report.findings.find((f) => f.name === 'qs-gone')!.changes?.map((c) => c.path)).toEqual(['/usr/bin/qs-gone']);
  });

  it('catches the tampered library with only the KIWI package list, through the rpmdb sha256', async () => {
    // What KIWI runs for an rpm image: rpm -qa --qf '%{NAME}|%{EPOCH}|%{VERSION}|%{RELEASE}|%{ARCH}|%{DISTURL}|%{LICENSE}\n'
    const packages = parseKiwiPackages(rpmInRoot(root, ['-qa', '--qf', '%{NAME}|%{EPOCH}|%{VERSION}|%{RELEASE}|%{ARCH}|%{DISTURL}|%{LICENSE}\\n']), 'el.x86_64-1.packages');
    const kiwi = manifestFromKiwi(packages, [], { name: 'el', version: '1' }, new Date());
    let report = await scanRoot(await openRoot(root), kiwi, { hostname: 'el' });
    expect(report.findings.map((f) => [f.kind, f.severity, f.path, f.reason])).toEqual([
      ['file-modified', 'critical', '/usr/lib/qs/libqs.so', "content differs from rpm package qs-lib's own digest, and the package did not change: tampering"],
    ]);
    // rpm -V's M: the mode in the header stands in for a file record.
    chmodSync(path.join(root, 'usr/bin/qs-tool'), 0o4755);
    report = await scanRoot(await openRoot(root), kiwi, { hostname: 'el' });
    expect(report.findings.find((f) => f.path === '/usr/bin/qs-tool')).toMatchObject({ kind: 'file-metadata', severity: 'critical', before: { mode: '0755' }, after: { mode: '4755' }, owner: { name: 'qs-tool' } });
    // rpm -V's U, G and L: owner names resolve through the root's own passwd and group.
    writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n');
    writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\ndaemon:x:1:\n');
    chownSync(path.join(root, 'usr/share/qs/data'), 1, 1);
    rmSync(path.join(root, 'usr/lib/qs/libqs.so.3'));
    symlinkSync('/tmp/evil.so', path.join(root, 'usr/lib/qs/libqs.so.3'));
    report = await scanRoot(await openRoot(root), kiwi, { hostname: 'el' });
    expect(report.findings.find((f) => f.path === '/usr/share/qs/data')).toMatchObject({ kind: 'file-metadata', before: { uid: 0, gid: 0 }, after: { uid: 1, gid: 1 }, owner: { name: 'qs-lib' } });
    expect(report.findings.find((f) => f.path === '/usr/lib/qs/libqs.so.3')).toMatchObject({ kind: 'file-metadata', before: { target: 'libqs.so' }, after: { target: '/tmp/evil.so' }, owner: { name: 'qs-lib' } });
  });
});
