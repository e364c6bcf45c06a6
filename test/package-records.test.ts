import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { ROTATED_LOG_MAX_BYTES, mergeDpkgChangeSets, parseAptHistory, parseDpkgLog, readDpkgChangeSets } from '../agent/collect/dpkg-log.js';
import { openRoot } from '../agent/root.js';
import { parseGemspec } from '../agent/collect/gem.js';
import { parsePacklist, parsePerllocal, perlDateToIso } from '../agent/collect/cpan.js';
import { parsePackageJson } from '../agent/collect/npm.js';
import { parseMetadata, parseRecord } from '../agent/collect/pip.js';
import { clusterByTime, normalizePythonName } from '../agent/collect/read.js';
import { mergeCollected } from '../agent/fingerprint/observe.js';
import { summarize } from '../shared/report.js';
import type { Finding } from '../shared/report.js';

const HISTORY = `
Start-Date: 2026-11-29  21:58:30
Commandline: apt-get install -y netcat-openbsd
Requested-By: admin (1000)
Install: netcat-openbsd:amd64 (1.219-1), libbsd0:amd64 (0.11.7-2, automatic)
End-Date: 2026-11-29  21:58:33

Start-Date: 2026-11-29  22:10:01
Commandline: apt-get -y upgrade
Upgrade: openssl:amd64 (3.0.11-1~deb12u1, 3.0.11-1~deb12u2), libssl3:amd64 (3.0.11-1~deb12u1, 3.0.11-1~deb12u2)
Remove: less:amd64 (590-2.1~deb12u2)
End-Date: 2026-11-29  22:10:04
`;

const DPKG_LOG = `2026-11-29 21:58:31 startup archives unpack
2026-11-29 21:58:31 install netcat-openbsd:amd64 <none> 1.219-1
2026-11-29 21:58:31 status half-installed netcat-openbsd:amd64 1.219-1
2026-11-29 21:58:32 startup packages configure
2026-11-29 21:58:32 configure netcat-openbsd:amd64 1.219-1 <none>
2026-11-29 23:01:00 startup archives unpack
2026-11-29 23:01:00 upgrade qs-demo:all 1.0 1.1
2026-11-29 23:01:00 status installed qs-demo:all 1.1
2026-11-29 23:05:00 startup packages remove
2026-11-29 23:05:00 remove qs-demo:all 1.1 <none>
`;

describe('dpkg and apt logs', () => {
  it('makes one change set of each apt command, with its command line and user', () => {
    const sets = parseAptHistory(HISTORY);
    expect(sets).toEqual([
      {
        id: 'apt:2026-11-29T21:58:30',
        tool: 'apt',
        start: '2026-11-29T21:58:30',
        end: '2026-11-29T21:58:33',
        command: 'apt-get install -y netcat-openbsd',
        user: 'admin (1000)',
        events: [
          { ecosystem: 'dpkg', name: 'netcat-openbsd', action: 'install', after: '1.219-1' },
          { ecosystem: 'dpkg', name: 'libbsd0', action: 'install', after: '0.11.7-2' },
        ],
      },
      expect.objectContaining({
        command: 'apt-get -y upgrade',
        events: [
          { ecosystem: 'dpkg', name: 'openssl', action: 'change', before: '3.0.11-1~deb12u1', after: '3.0.11-1~deb12u2' },
          { ecosystem: 'dpkg', name: 'libssl3', action: 'change', before: '3.0.11-1~deb12u1', after: '3.0.11-1~deb12u2' },
          { ecosystem: 'dpkg', name: 'less', action: 'remove', before: '590-2.1~deb12u2' },
        ],
      }),
    ]);
  });

  it('keeps dpkg runs apt did not drive (dpkg -i, dpkg -r) as their own change sets', () => {
    const merged = mergeDpkgChangeSets(parseAptHistory(HISTORY), parseDpkgLog(DPKG_LOG));
    expect(merged.map((s) => [s.id, s.events.map((e) => `${e.action} ${e.name}`)])).toEqual([
      ['apt:2026-11-29T21:58:30', ['install netcat-openbsd', 'install libbsd0']],
      ['apt:2026-11-29T22:10:01', ['change openssl', 'change libssl3', 'remove less']],
      ['dpkg:2026-11-29T23:01:00', ['change qs-demo']],
      ['dpkg:2026-11-29T23:05:00', ['remove qs-demo']],
    ]);
  });

  it('reads rotated and gzipped logs, oldest first', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'qs-logs-'));
    try {
      mkdirSync(path.join(root, 'var/log/apt'), { recursive: true });
      const [first, second] = HISTORY.trim().split('\n\n');
      writeFileSync(path.join(root, 'var/log/apt/history.log.1.gz'), gzipSync(`${first}\n`));
      writeFileSync(path.join(root, 'var/log/apt/history.log'), `${second}\n`);
      writeFileSync(path.join(root, 'var/log/dpkg.log.2.gz'), 'not gzip at all');
      const sets = await readDpkgChangeSets(await openRoot(root));
      expect(sets.map((s) => s.command)).toEqual(['apt-get install -y netcat-openbsd', 'apt-get -y upgrade']);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('skips a gzipped rotation that inflates past the cap and reads the others', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'qs-logs-'));
    try {
      mkdirSync(path.join(root, 'var/log/apt'), { recursive: true });
      const [first, second] = HISTORY.trim().split('\n\n');
      // A valid log entry, then padding: one byte past the cap once inflated (~65 KiB on disk).
      const bomb = Buffer.alloc(ROTATED_LOG_MAX_BYTES + 1, 0x0a);
      bomb.write(`${first}\n`);
      writeFileSync(path.join(root, 'var/log/apt/history.log.2.gz'), gzipSync(bomb));
      writeFileSync(path.join(root, 'var/log/apt/history.log'), `${second}\n`);
      const sets = await readDpkgChangeSets(await openRoot(root));
      expect(sets.map((s) => s.command)).toEqual(['apt-get -y upgrade']);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('ignores lines that are not log entries', () => {
    expect(parseAptHistory('garbage\nStart-Date: yesterday\n')).toEqual([]);
    expect(parseDpkgLog('2026-11-29 oops\n\u0000\n')).toEqual([]);
  });

  it('keeps change set ids unique when two commands start in the same second', () => {
    const a = { id: 'apt:t', tool: 'apt', events: [{ ecosystem: 'dpkg' as const, name: 'a', action: 'install' as const }] };
    const b = { ...a, events: [{ ecosystem: 'dpkg' as const, name: 'b', action: 'install' as const }] };
    const merged = mergeCollected([{ packages: [], owned: new Map(), warnings: [], changeSets: [a, b] }]);
    expect(merged.changeSets.map((s) => s.id)).toEqual(['apt:t', 'apt:t#2']);
  });
});

describe('language package records', () => {
  it('reads a gemspec stub line and executables without evaluating Ruby', () => {
    const spec = `# -*- encoding: utf-8 -*-\n# stub: qsgem 0.3.0 ruby lib\n\nGem::Specification.new do |s|\n  s.name = "qsgem".freeze\n  s.version = "0.3.0"\n  s.executables = ["qsgem".freeze, "qs-other".freeze]\n  system("rm -rf /")\nend\n`;
    expect(parseGemspec(spec)).toEqual({ name: 'qsgem', version: '0.3.0', platform: 'ruby', executables: ['qsgem', 'qs-other'] });
    expect(parseGemspec('Gem::Specification.new do |s|\n  s.name = "nokogiri"\n  s.version = "1.15.4"\nend\n')).toMatchObject({ name: 'nokogiri', version: '1.15.4' });
    expect(parseGemspec('# stub: nokogiri 1.15.4 x86_64-linux lib\n')).toMatchObject({ platform: 'x86_64-linux' });
    expect(parseGemspec('puts "hello"')).toBeNull();
    expect(parseGemspec('# stub: ../../etc passwd ruby lib\n')).toBeNull();
  });

  it('reads perllocal.pod stanzas and .packlist lines', () => {
    const pod = `=head2 Sun Nov 29 22:27:13 2026: C<Module> L<Qs::Fix|Qs::Fix>\n\n=over 4\n\n=item *\n\nC<installed into: /usr/local/share/perl/5.36.0>\n\n=item *\n\nC<LINKTYPE: dynamic>\n\n=item *\n\nC<VERSION: 0.05>\n\n=item *\n\nC<EXE_FILES: bin/qs-fix>\n\n=back\n\n`;
    expect(parsePerllocal(pod)).toEqual([{ module: 'Qs::Fix', date: 'Sun Nov 29 22:27:13 2026', installedInto: '/usr/local/share/perl/5.36.0', version: '0.05', line: 1 }]);
    expect(perlDateToIso('Sun Nov  1 02:03:04 2026')).toBe('2026-11-01T02:03:04');
    expect(perlDateToIso('yesterday')).toBeUndefined();
    expect(parsePacklist('/usr/local/bin/qs-fix\n/usr/local/share/perl/5.36.0/Qs/Fix.pm type=file\nrelative/path\n/usr/local/lib/a/../b.so\n')).toEqual([
      '/usr/local/bin/qs-fix',
      '/usr/local/share/perl/5.36.0/Qs/Fix.pm',
      '/usr/local/lib/b.so',
    ]);
  });

  it('reads dist-info METADATA and RECORD, with quoted paths and urlsafe digests as hex', () => {
    expect(parseMetadata('Metadata-Version: 2.1\nName: Qs_Wheel.Demo\nVersion: 1.0.2\n\nName: not-this\n')).toEqual({ name: 'Qs_Wheel.Demo', version: '1.0.2' });
    expect(normalizePythonName('Qs_Wheel.Demo')).toBe('qs-wheel-demo');
    const { entries, errors } = parseRecord('qs/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n"odd,name.py",,\nqs-1.0.dist-info/RECORD,,\nbad.py,md5=zzz,3\n"unterminated,\n', 'RECORD');
    expect(entries).toEqual([
      { path: 'qs/__init__.py', digest: { algo: 'sha256', hex: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' } },
      { path: 'odd,name.py' },
      { path: 'qs-1.0.dist-info/RECORD' },
      { path: 'bad.py' },
    ]);
    expect(errors).toEqual(['RECORD:4: unrecognised hash "md5=zzz"', 'RECORD:5: not a RECORD line (path,hash,size): "\\"unterminated," skipped']);
  });

  it('refuses a package.json whose fields are not what npm writes, naming the field', () => {
    expect(parsePackageJson('{"name":"@qs/npm-tool","version":"1.2.3","bin":"cli.js"}', 'p.json')).toEqual({ name: '@qs/npm-tool', version: '1.2.3', bin: { 'npm-tool': 'cli.js' } });
    expect(() => parsePackageJson('{"name":"x","version":7}', 'p.json')).toThrow('p.json: version: expected a non-empty string');
    expect(() => parsePackageJson('[1]', 'p.json')).toThrow('p.json: name: expected a non-empty string');
    expect(() => parsePackageJson('{', 'p.json')).toThrow(/^p\.json: not JSON/);
  });

  it('groups installs seconds apart into one change set and a later one into another', () => {
    const at = (s: number) => new Date(Date.UTC(2026, 10, 29, 22, 0, s));
    const sets = clusterByTime(
      [
        { ecosystem: 'pip', name: 'b', version: '1', time: at(3), tool: 'pip', group: '/usr/local' },
        { ecosystem: 'pip', name: 'a', version: '1', time: at(0), tool: 'pip', group: '/usr/local' },
        { ecosystem: 'pip', name: 'c', version: '1', time: at(59), tool: 'pip', group: '/usr/local' },
      ],
      30_000,
    );
    expect(sets.map((s) => s.events.map((e) => e.name))).toEqual([['a', 'b'], ['c']]);
  });
});

describe('the summary', () => {
  it('counts change sets, not findings or files', () => {
    const file = (path: string): Finding => ({ kind: 'file-added', severity: 'high', path });
    const findings: Finding[] = [
      { kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: 'netcat-openbsd', changeSet: 'apt:1', changes: [file('/usr/bin/nc'), file('/usr/bin/nc.openbsd')] },
      { kind: 'package-added', severity: 'medium', ecosystem: 'dpkg', name: 'libbsd0', changeSet: 'apt:1', changes: [file('/usr/lib/libbsd.so.0')] },
      { kind: 'file-modified', severity: 'critical', path: '/usr/bin/ls' },
    ];
    expect(summarize(findings)).toEqual({ status: 'drift', counts: { critical: 1, high: 1, medium: 0, low: 0, info: 0 }, findings: 3, files: 4, changeSets: 2 });
  });
});
