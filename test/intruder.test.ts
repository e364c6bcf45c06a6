// What a careful intruder does to a real Debian root (debootstrap copies), and what the scan
// says about it: each case with its exact findings and severities, and the look-alikes that
// are not drift.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, chmodSync, copyFileSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseReport } from '../shared/report.js';
import type { Finding, Report } from '../shared/report.js';
import { CACHE_DIR, buildDemoDeb, copyTree, ensureMinbase, ensureWithPackages, ensureWithSudo, runInChroot } from './helpers/debian-root.js';
import { runAgent } from './helpers/cli.js';

let workDir: string;
const cleanups: Array<() => void> = [];
const manifests = new Map<string, string>();

beforeAll(() => {
  workDir = mkdtempSync(path.join(CACHE_DIR, 'intruder-'));
});
afterAll(() => {
  for (const c of cleanups) c();
  rmSync(workDir, { recursive: true, force: true });
});

/** The manifest of `root`, or of what `from` (`--from-kiwi FILE`, ...) lists (built once per name). */
function manifestOf(name: string, root: string, from: string[] = []): string {
  let file = manifests.get(name);
  if (file) return file;
  file = path.join(workDir, `${name}.manifest.json.gz`);
  const source = from.length > 0 ? from : ['--root', root, '--name', name, '--image-version', '1'];
  const r = runAgent(['manifest', ...source, '--out', file]);
  expect(r.code, r.stderr).toBe(0);
  manifests.set(name, file);
  return file;
}

function scan(root: string, manifest: string): { report: Report; human: string } {
  const r = runAgent(['scan', '--root', root, '--manifest', manifest, '--json']);
  expect(r.code === 0 || r.code === 1, r.stderr).toBe(true);
  const human = runAgent(['scan', '--root', root, '--manifest', manifest]).stdout;
  return { report: parseReport(JSON.parse(r.stdout), 'scan output'), human };
}

function copy(source: string): string {
  const c = copyTree(source);
  cleanups.push(c.remove);
  return c.dir;
}

const brief = (f: Finding): string => [f.kind, f.severity, f.path ?? `${f.ecosystem}:${f.name}`, f.owner ? `owner=${f.owner.name}` : ''].filter(Boolean).join(' ');
const all = (fs: readonly Finding[]): Finding[] => fs.flatMap((f) => [f, ...all(f.changes ?? [])]);

describe('file capabilities (setcap)', () => {
  let minbase: string;
  beforeAll(() => {
    minbase = manifestOf('minbase', ensureMinbase());
  });

  it('a capability put on a package binary and a new file that carries one are critical', () => {
    const dir = copy(ensureMinbase());
    execFileSync('setcap', ['cap_net_raw+ep', path.join(dir, 'usr/bin/tar')]);
    copyFileSync(path.join(dir, 'usr/bin/true'), path.join(dir, 'usr/local/bin/sniff'));
    execFileSync('setcap', ['cap_net_admin,cap_net_raw+eip', path.join(dir, 'usr/local/bin/sniff')]);
    const { report, human } = scan(dir, minbase);
    expect(report.findings.map(brief).sort()).toEqual(['file-added critical /usr/local/bin/sniff', 'file-metadata critical /usr/bin/tar owner=tar']);
    const tar = report.findings.find((f) => f.path === '/usr/bin/tar')!;
    expect(tar).toMatchObject({ before: { capability: '' }, after: { capability: 'cap_net_raw=ep' }, reason: 'file capabilities added: cap_net_raw=ep' });
    expect(report.findings.find((f) => f.path === '/usr/local/bin/sniff')!.reason).toBe('new file with capabilities: cap_net_admin,cap_net_raw=eip');
    expect(human).toContain('file-metadata   /usr/bin/tar [dpkg tar] capability none -> cap_net_raw=ep: file capabilities added: cap_net_raw=ep');
  });

  describe('against an image that ships a capability', () => {
    let dir: string;
    let manifest: string;
    beforeAll(() => {
      const image = copy(ensureMinbase());
      execFileSync('setcap', ['cap_net_raw+ep', path.join(image, 'usr/bin/tar')]);
      manifest = manifestOf('capped', image);
      dir = copy(image);
    });

    it('records it in the manifest, and an unchanged copy is clean', () => {
      expect(scan(dir, manifest).report.findings).toEqual([]);
    });

    it('a capability removed and put back is not drift', () => {
      execFileSync('setcap', ['-r', path.join(dir, 'usr/bin/tar')]);
      execFileSync('setcap', ['cap_net_raw+ep', path.join(dir, 'usr/bin/tar')]);
      expect(scan(dir, manifest).report.findings).toEqual([]);
    });

    it('a capability widened is critical; one removed is a change, not critical', () => {
      execFileSync('setcap', ['cap_net_raw,cap_sys_admin+ep', path.join(dir, 'usr/bin/tar')]);
      const widened = scan(dir, manifest).report.findings;
      expect(widened.map(brief)).toEqual(['file-metadata critical /usr/bin/tar owner=tar']);
      expect(widened[0]).toMatchObject({ before: { capability: 'cap_net_raw=ep' }, after: { capability: 'cap_net_raw,cap_sys_admin=ep' }, reason: 'file capabilities changed: cap_net_raw,cap_sys_admin=ep' });
      execFileSync('setcap', ['-r', path.join(dir, 'usr/bin/tar')]);
      const removed = scan(dir, manifest).report.findings;
      expect(removed.map(brief)).toEqual(['file-metadata high /usr/bin/tar owner=tar']);
      expect(removed[0]).toMatchObject({ before: { capability: 'cap_net_raw=ep' }, after: { capability: '' } });
    });
  });
});

describe('sensitive places (persistence and escalation) with their ATT&CK ids', () => {
  let report: Report;
  let human: string;
  beforeAll(() => {
    const dir = copy(ensureMinbase());
    const r = (p: string): string => path.join(dir, p);
    writeFileSync(r('etc/ld.so.preload'), '/usr/local/lib/libhook.so\n');
    writeFileSync(r('usr/local/lib/libhook.so'), 'ELF');
    writeFileSync(r('usr/lib/x86_64-linux-gnu/libsystemd-helper.so.0'), 'ELF');
    mkdirSync(r('etc/sudoers.d'));
    writeFileSync(r('etc/sudoers.d/zz'), 'backup ALL=(ALL) NOPASSWD: ALL\n', { mode: 0o440 });
    writeFileSync(r('etc/cron.d/sync'), '* * * * * root /usr/local/bin/sync-up\n');
    writeFileSync(r('etc/systemd/system/sync-up.service'), '[Service]\nExecStart=/usr/local/bin/sync-up\n');
    mkdirSync(r('etc/systemd/system/multi-user.target.wants'), { recursive: true });
    symlinkSync('/etc/systemd/system/sync-up.service', r('etc/systemd/system/multi-user.target.wants/sync-up.service'));
    appendFileSync(r('etc/pam.d/common-auth'), 'auth sufficient pam_permit.so\n');
    mkdirSync(r('etc/ssh/sshd_config.d'), { recursive: true });
    writeFileSync(r('etc/ssh/sshd_config.d/zz.conf'), 'PermitRootLogin yes\n');
    mkdirSync(r('srv/git/.ssh'), { recursive: true });
    writeFileSync(r('srv/git/.ssh/authorized_keys'), 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDx intruder\n');
    appendFileSync(r('etc/passwd'), 'toor:x:0:0::/root:/bin/bash\n');
    appendFileSync(r('etc/shadow'), 'toor:$y$j9T$abc:20000:0:99999:7:::\n');
    appendFileSync(r('etc/group'), 'toor:x:0:\n');
    chmodSync(r('usr/local/bin'), 0o777);
    writeFileSync(r('usr/local/sbin/rootsh'), '#!/bin/sh\n', { mode: 0o755 });
    chmodSync(r('usr/local/sbin/rootsh'), 0o4755);
    // A hidden hard link keeps the old setuid binary after passwd is upgraded.
    linkSync(r('usr/bin/passwd'), r('usr/lib/x86_64-linux-gnu/.pw'));
    ({ report, human } = scan(dir, manifestOf('minbase', ensureMinbase())));
  });

  it('raises each change to the place’s severity and names the technique', () => {
    const tagged = (f: Finding): string => `${brief(f)} ${f.attack?.id ?? '-'}`;
    expect(report.findings.map(tagged).sort()).toEqual(
      [
        'file-added critical /etc/ld.so.preload T1574.006',
        'file-added high /usr/local/lib/libhook.so T1574.006',
        'file-added high /usr/lib/x86_64-linux-gnu/libsystemd-helper.so.0 T1574.006',
        'file-added critical /etc/sudoers.d T1548.003',
        'file-added critical /etc/sudoers.d/zz T1548.003',
        'file-added high /etc/cron.d/sync T1053.003',
        'file-added high /etc/systemd/system/sync-up.service T1543.002',
        'file-added high /etc/systemd/system/multi-user.target.wants/sync-up.service T1543.002',
        'file-modified critical /etc/pam.d/common-auth T1556.003',
        'file-added medium /etc/ssh -',
        'file-added high /etc/ssh/sshd_config.d T1556',
        'file-added high /etc/ssh/sshd_config.d/zz.conf T1556',
        'file-added low /srv/git -',
        'file-added low /srv/git/.ssh -',
        'file-added critical /srv/git/.ssh/authorized_keys T1098.004',
        'file-modified critical /etc/passwd T1136.001',
        'file-modified high /etc/shadow T1136.001',
        'file-modified high /etc/group T1136.001',
        'file-metadata high /usr/local/bin T1222.002',
        'file-added critical /usr/local/sbin/rootsh T1548.001',
        'file-added critical /usr/lib/x86_64-linux-gnu/.pw T1548.001',
      ].sort(),
    );
  });

  it('calls out the new uid 0 account and the hidden setuid link', () => {
    expect(report.findings.find((f) => f.path === '/etc/passwd')!.reason).toBe('accounts with uid 0 besides root: toor');
    expect(report.findings.find((f) => f.path === '/usr/lib/x86_64-linux-gnu/.pw')!.reason).toBe('new setuid/setgid file with a hidden name');
  });

  it('shows the technique in the human output', () => {
    expect(human).toContain('file-added      /etc/ld.so.preload  [ATT&CK T1574.006 Hijack Execution Flow: Dynamic Linker Hijacking]');
    expect(human).toContain('file-modified   /etc/passwd: accounts with uid 0 besides root: toor  [ATT&CK T1136.001 Create Account: Local Account]');
    expect(human).toContain('[ATT&CK T1053.003 Scheduled Task/Job: Cron]');
  });
});

describe('not drift', () => {
  it('the same bytes under a new inode, and touch of many files', () => {
    const dir = copy(ensureMinbase());
    const ls = path.join(dir, 'usr/bin/ls');
    copyFileSync(ls, `${ls}.tmp`);
    chmodSync(`${ls}.tmp`, 0o755);
    renameSync(`${ls}.tmp`, ls);
    execFileSync('sh', ['-c', 'find "$0/usr/share/doc" "$0/etc" -type f -exec touch {} +', dir]);
    expect(scan(dir, manifestOf('minbase', ensureMinbase())).report.findings).toEqual([]);
  });
});

describe('the image manifest outranks the host’s package database', () => {
  it('a tampered binary whose md5sums line was rewritten to match is critical, and the forged database is said', () => {
    const dir = copy(ensureMinbase());
    const id = path.join(dir, 'usr/bin/id');
    appendFileSync(id, 'implant');
    const sums = path.join(dir, 'var/lib/dpkg/info/coreutils.md5sums');
    const md5 = createHash('md5').update(readFileSync(id)).digest('hex');
    writeFileSync(sums, readFileSync(sums, 'utf8').replace(/^[0-9a-f]{32} {2}usr\/bin\/id$/m, `${md5}  usr/bin/id`));
    expect(runInChroot(dir, ['md5sum', '-c', '--quiet', '/var/lib/dpkg/info/coreutils.md5sums'], { cwd: '/' })).toBe(''); // debsums' view: all fine
    const { report, human } = scan(dir, manifestOf('minbase', ensureMinbase()));
    expect(report.findings.map(brief)).toEqual(['file-modified critical /usr/bin/id owner=coreutils']);
    expect(report.findings[0]!.reason).toBe("content differs from the image's record, and the package did not change: tampering; dpkg package coreutils's database digest was changed to match it (database forged)");
    expect(report.findings[0]!.attack?.id).toBe('T1554');
    expect(human).toContain('database forged');
  });

  it('dpkg-divert --rename with a wrapper in its place: the replaced file is tampering and names the diversion', () => {
    const dir = copy(ensureMinbase());
    runInChroot(dir, ['dpkg-divert', '--local', '--rename', '--divert', '/usr/bin/id.real', '--add', '/usr/bin/id']);
    writeFileSync(path.join(dir, 'usr/bin/id'), '#!/bin/sh\n/usr/local/bin/log "$@"; exec /usr/bin/id.real "$@"\n', { mode: 0o755 });
    const { report } = scan(dir, manifestOf('minbase', ensureMinbase()));
    const tagged = (f: Finding): string => `${brief(f)} ${f.attack?.id ?? '-'}`;
    expect(report.findings.map(tagged)).toEqual(['file-modified critical /usr/bin/id owner=coreutils T1036.005', 'file-added high /usr/bin/id.real owner=coreutils T1036.005']);
    expect(report.findings[0]!.reason).toBe("replaced: a local dpkg-divert moved dpkg package coreutils's file to /usr/bin/id.real and this took its place");
    expect(report.findings[1]!.reason).toBe("dpkg package coreutils's file, moved here by a local dpkg-divert of /usr/bin/id");
  });
});

describe('packages installed after the image are verified against their own database', () => {
  it('a binary of a real apt-get install, edited afterwards, is critical under its package', () => {
    const dir = copy(ensureWithPackages()); // netcat-openbsd and less from one real apt-get install
    appendFileSync(path.join(dir, 'usr/bin/less'), 'implant');
    const { report } = scan(dir, manifestOf('minbase', ensureMinbase()));
    const less = report.findings.find((f) => f.name === 'less')!;
    expect(brief(less)).toBe('package-added critical dpkg:less');
    const edited = less.changes!.find((c) => c.path === '/usr/bin/less')!;
    expect(brief(edited)).toBe('file-added critical /usr/bin/less owner=less');
    expect(edited.reason).toBe("content differs from dpkg package less's own digest: changed after it was installed");
    // The rest of the install is as dpkg wrote it.
    expect(less.changes!.filter((c) => c.severity === 'critical')).toEqual([edited]);
    expect(brief(report.findings.find((f) => f.name === 'netcat-openbsd')!)).toBe('package-added high dpkg:netcat-openbsd');
  });
});

describe('package-only manifests (KIWI, SBOM) report missing package files', () => {
  let kiwi: string;
  let sbom: string;
  beforeAll(() => {
    // What the image's build tools would list, from the image's own dpkg database.
    const listed = runInChroot(ensureMinbase(), ['dpkg-query', '-W', '-f', '${Package}\\t${Version}\\t${Architecture}\\n']).trim().split('\n').map((l) => l.split('\t') as [string, string, string]);
    const kiwiFile = path.join(workDir, 'minbase.x86_64-1.0.packages');
    writeFileSync(kiwiFile, listed.map(([n, v, a]) => `${n}|None|${v}|None|${a}|None|None`).join('\n') + '\n');
    const sbomFile = path.join(workDir, 'minbase.cdx.json');
    const components = listed.map(([n, v, a]) => ({ type: 'library', name: n, version: v, purl: `pkg:deb/debian/${n}@${encodeURIComponent(v)}?arch=${a}` }));
    writeFileSync(sbomFile, JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.5', metadata: { component: { name: 'minbase', version: '1' } }, components }));
    kiwi = manifestOf('minbase-kiwi', ensureMinbase(), ['--from-kiwi', kiwiFile]);
    sbom = manifestOf('minbase-sbom', ensureMinbase(), ['--from-sbom', sbomFile]);
  });

  it('an untouched copy has nothing missing', () => {
    const dir = copy(ensureMinbase());
    expect(scan(dir, kiwi).report.findings).toEqual([]);
  });

  it('a removed package file is file-removed with its owner, under both', () => {
    const dir = copy(ensureMinbase());
    rmSync(path.join(dir, 'usr/bin/yes'));
    rmSync(path.join(dir, 'usr/share/doc/bash/README.gz'));
    for (const manifest of [kiwi, sbom]) {
      const { report, human } = scan(dir, manifest);
      expect(report.findings.map(brief).sort()).toEqual(['file-removed high /usr/bin/yes owner=coreutils', 'file-removed high /usr/share/doc/bash/README.gz owner=bash']);
      expect(human).toContain('file-removed    /usr/bin/yes [dpkg coreutils]');
    }
  });
});

describe('change sets for package operations without apt', () => {
  it('dpkg -i of a local .deb is one change set, from dpkg.log alone', () => {
    const dir = copy(ensureMinbase());
    const deb = buildDemoDeb(path.join(dir, 'root'), '1.0');
    runInChroot(dir, ['dpkg', '-i', `/root/${path.basename(deb)}`]);
    const { report, human } = scan(dir, manifestOf('minbase', ensureMinbase()));
    expect(report.findings.map(brief)).toEqual(['package-added high dpkg:qs-demo']);
    const demo = report.findings[0]!;
    expect(demo.changes!.map(brief)).toEqual(expect.arrayContaining(['file-added high /usr/bin/qs-demo owner=qs-demo']));
    expect(demo.changeSet).toMatch(/^dpkg:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
    expect(report.changeSets).toEqual([{ id: demo.changeSet, tool: 'dpkg', start: expect.any(String), end: expect.any(String), packages: 1 }]);
    expect(human).toMatch(/package-added {3}dpkg qs-demo 1\.0 \(\d+ paths\)  <- dpkg \d{4}-/);
  });
});

describe('not drift: a reinstall', () => {
  it('apt-get install --reinstall of an installed package changes nothing', () => {
    const dir = copy(ensureMinbase());
    const deb = readdirSync(path.join(dir, 'var/cache/apt/archives')).find((n) => n.startsWith('sed_'))!;
    runInChroot(dir, ['apt-get', 'install', '-y', '-q', '--reinstall', `/var/cache/apt/archives/${deb}`]);
    expect(readFileSync(path.join(dir, 'var/log/apt/history.log'), 'utf8')).toContain('Reinstall: sed');
    expect(scan(dir, manifestOf('minbase', ensureMinbase())).report.findings).toEqual([]);
  });
});

describe('who made a hand edit: evidence from sudo’s log, wtmp and the ctime', () => {
  let manifest: string;
  beforeAll(() => {
    manifest = manifestOf('with-sudo', ensureWithSudo());
  });

  /** Real wtmp records, written by util-linux's utmpdump from its own text form. */
  function writeWtmp(dir: string, records: Array<{ type: 7 | 8; user: string; line: string; host: string; at: Date }>): void {
    const stamp = (d: Date): string => d.toISOString().replace(/\.(\d{3})Z$/, ',$1000+00:00');
    const text = records.map((r) => `[${r.type}] [04242] [ts/0] [${r.user}] [${r.line}] [${r.host}] [${r.type === 7 ? r.host : '0.0.0.0'}] [${stamp(r.at)}]\n`).join('');
    writeFileSync(path.join(dir, 'var/log/wtmp'), execFileSync('utmpdump', ['-r'], { input: text, stdio: ['pipe', 'pipe', 'ignore'] }));
  }
  const asAlice = (dir: string, argv: string[], input: string): void => {
    execFileSync('/usr/sbin/chroot', ['--userspec=alice:alice', dir, ...argv], { input, stdio: ['pipe', 'ignore', 'ignore'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  };

  it('names alice: her SSH session (wtmp) and her sudo command that names the file (sudo’s logfile)', () => {
    const dir = copy(ensureWithSudo());
    writeWtmp(dir, [{ type: 7, user: 'alice', line: 'pts/0', host: '10.0.0.5', at: new Date(Date.now() - 60_000) }]);
    asAlice(dir, ['sudo', '-n', '/usr/bin/tee', '-a', '/etc/motd'], 'maintenance tonight\n');
    expect(readFileSync(path.join(dir, 'var/log/sudo.log'), 'utf8')).toMatch(/: alice : .*COMMAND=\/usr\/bin\/tee -a \/etc\/motd/);
    const { report, human } = scan(dir, manifest);
    expect(report.findings.map(brief)).toEqual(['file-modified medium /etc/motd']);
    const actor = report.findings[0]!.actor!;
    expect(actor.user).toBe('alice');
    expect(actor.evidence.map((e) => e.source)).toEqual(['ctime', '/var/log/wtmp', '/var/log/sudo.log']);
    expect(actor.evidence[1]!.text).toMatch(/^during alice's session on pts\/0 from 10\.0\.0\.5 \(since \d\d:\d\d:\d\d\)$/);
    expect(actor.evidence[2]!.text).toMatch(/^at \d\d:\d\d:\d\d alice ran `sudo \/usr\/bin\/tee -a \/etc\/motd`$/);
    expect(human).toMatch(/file-modified {3}\/etc\/motd\n {6}likely actor alice \(evidence, not proof\): changed at \d\d:\d\d:\d\d; during alice's session on pts\/0 from 10\.0\.0\.5 \(since \d\d:\d\d:\d\d\) \(\/var\/log\/wtmp\); at \d\d:\d\d:\d\d alice ran `sudo \/usr\/bin\/tee -a \/etc\/motd` \(\/var\/log\/sudo\.log\)/);
  });

  it('a change with no matching record gets no actor', () => {
    const dir = copy(ensureWithSudo());
    const hourAgo = Date.now() - 3600_000;
    writeWtmp(dir, [
      { type: 7, user: 'alice', line: 'pts/0', host: '10.0.0.5', at: new Date(hourAgo - 600_000) },
      { type: 8, user: '', line: 'pts/0', host: '', at: new Date(hourAgo) },
    ]);
    appendFileSync(path.join(dir, 'etc/motd'), 'by hand\n'); // as root, outside any session, without sudo
    const { report } = scan(dir, manifest);
    expect(report.findings.map(brief)).toEqual(['file-modified medium /etc/motd']);
    expect(report.findings[0]!.actor).toBeUndefined();
  });
});
