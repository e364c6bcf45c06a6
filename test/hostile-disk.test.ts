// The collectors against damaged package databases made by the real tools: an rpmdb built with
// rpm and cut short, a Packages.db this machine's rpm cannot read, a real dpkg status cut
// mid-stanza, unreadable dpkg info files, a real pip RECORD with lines that are not records.
// Damage must become a warning naming the file, never a silent loss, and never a write.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dpkgCollector, parseList, readDpkgStatus } from '../agent/collect/dpkg.js';
import { pipCollector } from '../agent/collect/pip.js';
import { queryRpmDatabase, rpmCollector } from '../agent/collect/rpm.js';
import { readManifestFile } from '../agent/manifest/io.js';
import { openRoot } from '../agent/root.js';
import { runAgent } from './helpers/cli.js';
import { copyTree, ensureMinbase, ensureWithLanguages } from './helpers/debian-root.js';
import { CPAN_DEMO, GEM_DEMO, NPM_DEMO, PIP_DEMO, cpanInstallDemo, gemInstallDemo, npmInstallDemo, pipInstallDemo } from './helpers/language-installs.js';
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

describe('dpkg collector on a damaged status and info folder', { timeout: 60_000 }, () => {
  const trees: Array<{ remove: () => void }> = [];
  afterAll(() => trees.forEach((t) => t.remove()));
  /** A private copy of the real debootstrap tree. */
  function realTree(): string {
    const t = copyTree(ensureMinbase());
    trees.push(t);
    return t.dir;
  }
  const STATUS = '/var/lib/dpkg/status';

  it('keeps what a real status cut mid-stanza still holds and warns with the file and line where it was cut', async () => {
    const root = realTree();
    const full = readFileSync(path.join(root, 'var/lib/dpkg/status'), 'utf8');
    const whole = readDpkgStatus(full, STATUS).packages.length;
    const cut = full.slice(0, Math.floor(full.length / 2));
    writeFileSync(path.join(root, 'var/lib/dpkg/status'), cut);
    const got = (await dpkgCollector.collect(await openRoot(root)))!;
    expect(got.packages.length).toBeGreaterThan(whole / 3);
    expect(got.packages.length).toBeLessThan(whole);
    const warning = got.warnings.find((w) => w.code === 'DPKG_STATUS_INVALID')!;
    expect(warning).toMatchObject({ path: STATUS, message: expect.stringMatching(/^\/var\/lib\/dpkg\/status:\d+: the file ends inside the stanza of \S+ that starts here: it was cut short/) });
    // The line named is the cut stanza's first line.
    const [, line, name] = /status:(\d+): the file ends inside the stanza of (\S+)/.exec(warning.message)!;
    expect(cut.split('\n')[Number(line) - 1]).toBe(`Package: ${name}`);
    expect(got.warnings.map((w) => w.code)).not.toContain('DPKG_STATUS_UNREADABLE');
  });

  it('calls a status of garbage DPKG_STATUS_UNREADABLE, with its bad lines named and capped', async () => {
    const root = realTree();
    // Binary garbage with the shape of lines, and a "field" or two in it.
    const garbage = Array.from({ length: 400 }, (_, i) => (i % 50 === 7 ? 'Depends: x' : randomBytes(30).toString('base64'))).join('\n');
    writeFileSync(path.join(root, 'var/lib/dpkg/status'), garbage);
    const got = (await dpkgCollector.collect(await openRoot(root)))!;
    expect(got.packages).toEqual([]);
    const codes = got.warnings.map((w) => w.code);
    expect(codes).toContain('DPKG_STATUS_UNREADABLE');
    expect(got.warnings.find((w) => w.code === 'DPKG_STATUS_UNREADABLE')!.message).toMatch(/no installed package could be read from \d+ bytes/);
    const invalid = got.warnings.filter((w) => w.code === 'DPKG_STATUS_INVALID');
    expect(invalid).toHaveLength(10);
    expect(invalid[0]!.message).toBe('/var/lib/dpkg/status:1: not a "Field: value" line');
    expect(invalid.at(-1)!.message).toMatch(/^\.\.\. and \d+ more problems in the same file$/);
    expect(invalid.some((w) => w.message.includes('stanza without a Package field'))).toBe(true);
  });

  it('loses only the package whose .list is a folder, and reads every other one', async () => {
    const root = realTree();
    const info = path.join(root, 'var/lib/dpkg/info');
    const bashFiles = parseList(readFileSync(path.join(info, 'bash.list'), 'utf8'));
    rmSync(path.join(info, 'bash.list'));
    mkdirSync(path.join(info, 'bash.list'));
    const got = (await dpkgCollector.collect(await openRoot(root)))!;
    const whole = readDpkgStatus(readFileSync(path.join(root, 'var/lib/dpkg/status'), 'utf8'), STATUS).packages;
    expect(got.packages.map((p) => p.name)).toEqual(whole.map((p) => p.name));
    expect(got.warnings).toEqual([{ code: 'DPKG_LIST_UNREADABLE', path: '/var/lib/dpkg/info/bash.list', message: "cannot read bash's file list (EISDIR): its files are not attributed" }]);
    expect(got.owned.get('/usr/bin/bash')).toBeUndefined();
    expect(bashFiles).toContain('/bin/bash');
    expect(got.owned.get('/usr/bin/dash')).toMatchObject({ owner: { ecosystem: 'dpkg', name: 'dash' }, digest: { algo: 'md5' } });
  });

  it('warns for a .list and .md5sums it may not read (the agent run as nobody) and reads the rest', () => {
    const root = realTree();
    const info = path.join(root, 'var/lib/dpkg/info');
    chmodSync(path.join(info, 'dash.list'), 0o000);
    chmodSync(path.join(info, 'grep.md5sums'), 0o000);
    // copyTree's parent folder is private to root: nobody must reach the tree and write the manifest.
    chmodSync(path.dirname(root), 0o755);
    const out = mkdtempSync(path.join(tmpdir(), 'qs-nobody-'));
    chmodSync(out, 0o777);
    const r = runAgent(['manifest', '--root', root, '--out', path.join(out, 'm.json')], { asUser: 65534 });
    expect(r.stderr).toContain("warning: DPKG_LIST_UNREADABLE /var/lib/dpkg/info/dash.list: cannot read dash's file list (EACCES): its files are not attributed");
    expect(r.stderr).toContain("warning: DPKG_MD5SUMS_UNREADABLE /var/lib/dpkg/info/grep.md5sums: cannot read grep's file digests (EACCES)");
    expect(r.code).toBe(0);
    return readManifestFile(path.join(out, 'm.json')).then((m) => {
      const whole = readDpkgStatus(readFileSync(path.join(root, 'var/lib/dpkg/status'), 'utf8'), STATUS).packages;
      expect(m.packages.filter((p) => p.ecosystem === 'dpkg')).toHaveLength(whole.length);
      rmSync(out, { recursive: true, force: true });
    });
  });
});

describe('language collectors on real pip, gem, cpan and npm installs', { timeout: 120_000 }, () => {
  let tree: { dir: string; remove: () => void };
  let root: string;
  beforeAll(() => {
    tree = copyTree(ensureWithLanguages());
    root = tree.dir;
    pipInstallDemo(root);
    gemInstallDemo(root);
    cpanInstallDemo(root);
    npmInstallDemo(root);
  }, 120_000);
  afterAll(() => tree.remove());
  const site = '/usr/local/lib/python3.11/dist-packages';

  it('skips RECORD merge-conflict markers and one- or two-column lines with a warning naming each line, and keeps the real entries', async () => {
    {
      const site = '/usr/local/lib/python3.11/dist-packages';
      const distInfo = readdirSync(path.join(root, site)).find((e) => e.startsWith('Qs_Wheel.Demo-') && e.endsWith('.dist-info'))!;
      const recordFile = path.join(root, site, distInfo, 'RECORD');
      const real = readFileSync(recordFile, 'utf8');
      const realLines = real.trimEnd().split('\n').length;
      // What a botched merge of the folder under version control and a half-written line leave.
      appendFileSync(recordFile, '<<<<<<< HEAD\nqs_wheel_demo/ours.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU\n=======\nqs_wheel_demo/theirs.py\n>>>>>>> upstream\n');
      const got = (await pipCollector.collect(await openRoot(root)))!;
      expect(got.packages).toContainEqual({ ecosystem: 'pip', name: PIP_DEMO.normalized, version: PIP_DEMO.version });
      const mine = [...got.owned].filter(([, f]) => f.owner.name === PIP_DEMO.normalized).map(([p]) => p);
      expect(mine).toContain(`${site}/${PIP_DEMO.module}/__init__.py`);
      expect(got.owned.get(`${site}/${PIP_DEMO.module}/__init__.py`)?.digest?.algo).toBe('sha256');
      for (const bogus of ['<<<<<<< HEAD', '=======', '>>>>>>> upstream', `${PIP_DEMO.module}/ours.py`, `${PIP_DEMO.module}/theirs.py`]) expect(mine).not.toContain(`${site}/${bogus}`);
      const warnings = got.warnings.filter((w) => w.path === `${site}/${distInfo}/RECORD`);
      expect(warnings.map((w) => w.code)).toEqual(Array(5).fill('PIP_RECORD_INVALID'));
      expect(warnings.map((w) => w.message)).toEqual(
        ['<<<<<<< HEAD', `${PIP_DEMO.module}/ours.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU`, '=======', `${PIP_DEMO.module}/theirs.py`, '>>>>>>> upstream'].map(
          (line, i) => `${site}/${distInfo}/RECORD:${realLines + 1 + i}: not a RECORD line (path,hash,size): ${JSON.stringify(line.slice(0, 40))} skipped`,
        ),
      );
    }
  });

  it('loses only the package whose gemspec, .packlist, package.json or RECORD it may not read (the agent run as nobody), with a warning each', async () => {
    const gemspec = `/var/lib/gems/3.1.0/specifications/${GEM_DEMO.name}-${GEM_DEMO.version}.gemspec`;
    const packlist = readdirSync(path.join(root, 'usr/local/lib/x86_64-linux-gnu/perl'))
      .map((v) => `/usr/local/lib/x86_64-linux-gnu/perl/${v}/auto/Qs/Fix/.packlist`)
      .find((p) => statSync(path.join(root, p), { throwIfNoEntry: false }))!;
    const packageJson = `/usr/local/lib/node_modules/${NPM_DEMO.name}/package.json`;
    const distInfo = readdirSync(path.join(root, site)).find((e) => e.startsWith('Qs_Wheel.Demo-') && e.endsWith('.dist-info'))!;
    const record = `${site}/${distInfo}/RECORD`;
    for (const p of [gemspec, packlist, packageJson, record]) chmodSync(path.join(root, p), 0o000);
    chmodSync(path.dirname(root), 0o755);
    const out = mkdtempSync(path.join(tmpdir(), 'qs-nobody-'));
    chmodSync(out, 0o777);
    try {
      const r = runAgent(['manifest', '--root', root, '--out', path.join(out, 'm.json')], { asUser: 65534 });
      expect(r.code).toBe(0);
      for (const line of [
        `warning: GEMSPEC_UNREADABLE ${gemspec}: cannot read the gemspec (EACCES): that gem is not checked`,
        `warning: PACKLIST_UNREADABLE ${packlist}: cannot read Qs::Fix's .packlist (EACCES): its files are not attributed`,
        `warning: NPM_PACKAGE_UNREADABLE ${packageJson}: cannot read package.json (EACCES): that package is not checked`,
      ]) expect(r.stderr).toContain(line);
      // METADATA's Name as the wheel wrote it.
      expect(r.stderr).toContain(`warning: PIP_RECORD_UNREADABLE ${record}: cannot read the file list of Qs-Wheel.Demo (EACCES): its files are not attributed`);
      expect(r.stderr).not.toContain('COLLECTOR_FAILED');
      const m = await readManifestFile(path.join(out, 'm.json'));
      const names = m.packages.map((p) => `${p.ecosystem}:${p.name}`);
      // The packages whose record is still readable are all there.
      expect(names).toEqual(expect.arrayContaining([`pip:${PIP_DEMO.normalized}`, `cpan:${CPAN_DEMO.name}`, 'dpkg:ruby', 'dpkg:python3-yaml']));
      expect(names).not.toContain(`gem:${GEM_DEMO.name}`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('warns for a folder of package records it may not list, instead of taking the ecosystem for absent', () => {
    const folders = ['/var/lib/gems/3.1.0/specifications', site, '/usr/local/lib/node_modules/@qs'];
    for (const p of folders) chmodSync(path.join(root, p), 0o000);
    const out = mkdtempSync(path.join(tmpdir(), 'qs-nobody-'));
    chmodSync(out, 0o777);
    try {
      const r = runAgent(['manifest', '--root', root, '--out', path.join(out, 'm.json')], { asUser: 65534 });
      expect(r.code).toBe(0);
      expect(r.stderr).toContain('warning: GEM_HOME_UNREADABLE /var/lib/gems/3.1.0/specifications: cannot list the folder (EACCES): the gems of this home are not checked');
      expect(r.stderr).toContain(`warning: PIP_SITE_UNREADABLE ${site}: cannot list the folder (EACCES): the Python packages installed there are not checked`);
      expect(r.stderr).toContain('warning: NPM_MODULES_UNREADABLE /usr/local/lib/node_modules/@qs: cannot list the folder (EACCES): the npm packages installed there are not checked');
    } finally {
      for (const p of folders) chmodSync(path.join(root, p), 0o755);
      rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('a scan that could not read a package database says so', { timeout: 60_000 }, () => {
  it('prints INCOMPLETE with the database named instead of CLEAN, --json carries the warning, and nothing is written into the root', () => {
    const root = path.join(work, 'scan-ndb');
    mkdirSync(path.join(root, 'var/lib/rpm'), { recursive: true });
    mkdirSync(path.join(root, 'usr/bin'), { recursive: true });
    writeFileSync(path.join(root, 'usr/bin/tool'), '#!/bin/sh\n');
    writeFileSync(path.join(root, 'var/lib/rpm/Packages.db'), Buffer.concat([Buffer.from('RpmP'), randomBytes(8188)]));
    const before = snapshot(root);
    const manifest = path.join(work, 'scan-ndb.json');
    const built = runAgent(['manifest', '--root', root, '--out', manifest]);
    expect(built.code).toBe(0);
    expect(built.stderr).toMatch(/warning: RPMDB_UNREADABLE \/var\/lib\/rpm\/Packages\.db: .*ndb database/);
    const human = runAgent(['scan', '--root', root, '--manifest', manifest]);
    expect(human.code).toBe(0);
    const lines = human.stdout.split('\n');
    expect(lines[1]).toBe('INCOMPLETE: no drift found, but 1 package database could not be read and its packages were not checked');
    expect(lines[2]).toMatch(/^ {2}not checked: RPMDB_UNREADABLE \/var\/lib\/rpm\/Packages\.db: .* read no package from this 8192-byte database/);
    expect(human.stdout).not.toContain('CLEAN');
    const json = runAgent(['scan', '--root', root, '--manifest', manifest, '--json']);
    const report = JSON.parse(json.stdout) as { summary: { status: string }; stats: { packages: number }; warnings: Array<{ code: string; path?: string }> };
    expect(report.stats.packages).toBe(0);
    expect(report.warnings).toContainEqual(expect.objectContaining({ code: 'RPMDB_UNREADABLE', path: '/var/lib/rpm/Packages.db' }));
    expect(diffSnapshots(before, snapshot(root))).toEqual([]);
  });
});
