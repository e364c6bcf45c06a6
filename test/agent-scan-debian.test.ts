// The agent against a real Debian root: manifest of a debootstrap minbase, then scans of copies
// that were changed the way people change hosts (a real apt-get install, edits, chmod, drops).
import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseReport } from '../shared/report.js';
import type { Finding, Report } from '../shared/report.js';
import { CACHE_DIR, copyTree, ensureMinbase, ensureWithPackages } from './helpers/debian-root.js';
import { runAgent } from './helpers/cli.js';

let workDir: string;
let manifestFile: string;
const cleanups: Array<() => void> = [];

beforeAll(() => {
  workDir = mkdtempSync(path.join(CACHE_DIR, 'scan-test-'));
  manifestFile = path.join(workDir, 'minbase.manifest.json.gz');
  const r = runAgent(['manifest', '--root', ensureMinbase(), '--name', 'debian-minbase', '--image-version', '1', '--out', manifestFile]);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toMatch(/wrote .*: image debian-minbase 1, \d+ packages, \d+ paths/);
});

afterAll(() => {
  for (const c of cleanups) c();
  rmSync(workDir, { recursive: true, force: true });
});

function scanJson(root: string): { code: number | null; report: Report } {
  const r = runAgent(['scan', '--root', root, '--manifest', manifestFile, '--json']);
  expect(r.code === 0 || r.code === 1, r.stderr).toBe(true);
  return { code: r.code, report: parseReport(JSON.parse(r.stdout), 'scan output') };
}

const brief = (f: Finding): string =>
  [f.kind, f.severity, f.path ?? `${f.ecosystem}:${f.name}`, f.owner ? `owner=${f.owner.name}` : ''].filter(Boolean).join(' ');

describe('scan of a debootstrap minbase against its own manifest', () => {
  it('reports nothing for an untouched copy and exits 0', () => {
    const copy = copyTree(ensureMinbase());
    cleanups.push(copy.remove);
    const { code, report } = scanJson(copy.dir);
    expect(report.findings).toEqual([]);
    expect(report.summary.status).toBe('clean');
    expect(report.stats.packages).toBeGreaterThan(50);
    expect(report.stats.files).toBeGreaterThan(3000);
    expect(code).toBe(0);
  });

  it('prints a readable verdict without --json', () => {
    const r = runAgent(['scan', '--root', ensureMinbase(), '--manifest', manifestFile]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('CLEAN: matches its image');
    expect(r.stdout).toMatch(/0 critical, 0 high, 0 medium, 0 low, 0 info/);
  });
});

describe('scan of a mutated copy', () => {
  let report: Report;
  let code: number | null;
  let human: string;

  beforeAll(() => {
    // A real `apt-get install netcat-openbsd less` (cached tree), then hand-made drift.
    const copy = copyTree(ensureWithPackages());
    cleanups.push(copy.remove);
    const r = (p: string): string => path.join(copy.dir, p);
    appendFileSync(r('usr/bin/ls'), 'tampered'); // package binary changed, package did not
    chmodSync(r('usr/bin/cat'), 0o4755); // setuid added
    unlinkSync(r('usr/bin/yes')); // package file removed
    writeFileSync(r('usr/local/bin/backdoor'), '#!/bin/sh\nexec /bin/sh\n', { mode: 0o755 }); // dropped binary
    writeFileSync(r('etc/evil.conf'), 'x=1\n'); // new config
    appendFileSync(r('etc/adduser.conf'), '\nDSHELL=/bin/zsh\n'); // conffile edited
    writeFileSync(r('etc/hostname'), 'pet-42\n'); // mutable by policy: info
    chmodSync(r('etc/issue'), 0o600); // config mode changed
    chownSync(r('usr/share/doc/bash/README.gz'), 1000, 1000); // package file re-owned
    mkdirSync(r('opt/tool'));
    writeFileSync(r('opt/tool/data.txt'), 'data\n'); // plain data: low
    // Drift in ignored places never counts.
    for (const p of ['var/log/quicksand-test.log', 'tmp/x', 'var/tmp/x', 'var/cache/x', 'root/.bash_history', 'var/lib/apt/lists/x']) {
      writeFileSync(r(p), 'noise');
    }
    mkdirSync(r('home/user'), { recursive: true });
    writeFileSync(r('home/user/notes'), 'noise');
    mkdirSync(r('usr/lib/python3/dist-packages/__pycache__'), { recursive: true });
    writeFileSync(r('usr/lib/python3/dist-packages/__pycache__/x.cpython-311.pyc'), 'noise');
    rmSync(r('usr/lib/python3'), { recursive: true }); // and gone again: leaves no trace

    const out = scanJson(copy.dir);
    report = out.report;
    code = out.code;
    human = runAgent(['scan', '--root', copy.dir, '--manifest', manifestFile]).stdout;
  });

  it('exits 1 and reports every planted change with the right kind, owner and severity', () => {
    expect(code).toBe(1);
    expect(report.findings.map(brief).sort()).toEqual(
      [
        'file-modified critical /usr/bin/ls owner=coreutils',
        'file-metadata critical /usr/bin/cat owner=coreutils',
        'file-removed high /usr/bin/yes owner=coreutils',
        'file-added high /usr/local/bin/backdoor',
        'file-metadata high /usr/share/doc/bash/README.gz owner=bash',
        'file-added medium /etc/evil.conf',
        'file-modified medium /etc/adduser.conf owner=adduser',
        'file-metadata medium /etc/issue owner=base-files',
        'file-added low /opt/tool',
        'file-added low /opt/tool/data.txt',
        'file-modified info /etc/hostname',
        'file-modified info /etc/ld.so.cache', // ldconfig ran during the apt install
        'package-added high dpkg:less',
        'package-added high dpkg:libbsd0',
        'package-added high dpkg:netcat-openbsd',
      ].sort(),
    );
  });

  it('says what changed in metadata findings', () => {
    const cat = report.findings.find((f) => f.path === '/usr/bin/cat')!;
    expect(cat.before).toEqual({ mode: '0755' });
    expect(cat.after).toEqual({ mode: '4755' });
    expect(report.findings.find((f) => f.path === '/usr/share/doc/bash/README.gz')).toMatchObject({ before: { uid: 0, gid: 0 }, after: { uid: 1000, gid: 1000 } });
  });

  it('calls the tampered binary tampering, checked against dpkg’s own digest', () => {
    expect(report.findings.find((f) => f.path === '/usr/bin/ls')!.reason).toMatch(/dpkg package coreutils's own digest.*tampering/);
  });

  it('nests the files an apt install brought under its package finding, alternatives links included', () => {
    const nc = report.findings.find((f) => f.name === 'netcat-openbsd')!;
    expect(nc.after).toBe('1.219-1');
    const ncPaths = nc.changes!.map((c) => c.path);
    expect(ncPaths).toEqual(expect.arrayContaining(['/usr/bin/nc.openbsd', '/usr/bin/nc', '/etc/alternatives/nc']));
    for (const c of nc.changes!) expect(c.owner?.name ?? 'alternatives').toMatch(/^(netcat-openbsd|alternatives)$/);
    const less = report.findings.find((f) => f.name === 'less')!;
    expect(less.changes!.map(brief)).toEqual(expect.arrayContaining(['file-added high /usr/bin/less owner=less', 'file-metadata medium /etc/alternatives/pager']));
    // Every added path of the install is accounted for: nothing of it leaks to the top level.
    expect(report.findings.filter((f) => f.path?.includes('less') || f.path?.includes('netcat'))).toEqual([]);
  });

  it('counts change sets by severity in the summary: the one apt command counts once', () => {
    // 15 top-level findings; the 3 packages of the one `apt-get install` are one change set.
    expect(report.summary.counts).toEqual({ critical: 2, high: 4, medium: 3, low: 2, info: 2 });
    expect(report.summary.findings).toBe(15);
    expect(report.summary.changeSets).toBe(13);
    const apt = report.findings.filter((f) => f.kind === 'package-added');
    expect(new Set(apt.map((f) => f.changeSet)).size).toBe(1);
    expect(report.changeSets).toEqual([expect.objectContaining({ id: apt[0]!.changeSet, tool: 'apt', command: expect.stringContaining('apt-get install'), packages: 3 })]);
    // Info-only drift would be clean; this is not.
    expect(report.summary.status).toBe('drift');
    expect(human).toContain('DRIFT: this host no longer matches its image');
    expect(human).toMatch(/CRITICAL\n {2}file-metadata {3}\/usr\/bin\/cat \[dpkg coreutils\] mode 0755 -> 4755/);
  });

  it('never reports paths under the ignore list', () => {
    const all = (fs: Finding[]): string[] => fs.flatMap((f) => [f.path ?? '', ...all(f.changes ?? [])]);
    for (const p of all(report.findings)) expect(p).not.toMatch(/^\/(var\/log|tmp|var\/tmp|var\/cache|root|home|var\/lib\/apt\/lists)\b|__pycache__/);
  });
});

describe('a removed package', () => {
  it('is one finding with its files under it', () => {
    const copy = copyTree(ensureMinbase());
    cleanups.push(copy.remove);
    execFileSync('chroot', [copy.dir, 'dpkg', '--purge', '--force-remove-essential', 'sed'], { stdio: 'ignore', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    const { report } = scanJson(copy.dir);
    const top = report.findings.map(brief);
    expect(top).toContain('package-removed high dpkg:sed');
    const sed = report.findings.find((f) => f.name === 'sed')!;
    expect(sed.changes!.map((c) => c.path)).toContain('/usr/bin/sed');
    expect(report.findings.filter((f) => f.path === '/usr/bin/sed')).toEqual([]);
    // Ignored paths: dpkg wrote to its log, which is not drift.
    expect(top.every((t) => !t.includes('/var/log'))).toBe(true);
  });
});
