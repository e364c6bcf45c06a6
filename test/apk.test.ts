import { createHash } from 'node:crypto';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { apkCollector, parseApkDigest, parseApkInstalled } from '../agent/collect/apk.js';
import { manifestFromSbom, parseSbom } from '../agent/manifest/import-sbom.js';
import { openRoot } from '../agent/root.js';
import { scanRoot } from '../agent/diff/scan.js';

// There is no apk tool on this machine: the database below follows apk-tools' documented
// lib/apk/db/installed format field by field, with digests computed from the real files.
const work = mkdtempSync(path.join(tmpdir(), 'qs-apk-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const q1 = (data: string): string => `Q1${createHash('sha1').update(data).digest('base64')}`;
const q2 = (data: string): string => `Q2${createHash('sha256').update(data).digest('base64')}`;

const FILES = {
  '/bin/busybox': 'busybox binary',
  '/etc/motd': 'Welcome to Alpine!\n',
  '/usr/bin/curl': 'curl binary',
  '/usr/lib/libcurl.so.4': 'libcurl',
};

function makeRoot(name: string): string {
  const root = path.join(work, name);
  for (const [p, content] of Object.entries(FILES)) {
    mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    writeFileSync(path.join(root, p), content, { mode: 0o755 });
  }
  mkdirSync(path.join(root, 'lib/apk/db'), { recursive: true });
  writeFileSync(
    path.join(root, 'lib/apk/db/installed'),
    [
      // busybox: the older SHA-1 digests (Q1), as apk keeps for packages built before v2.12.
      'C:Q1mOasM3WU0XHMqMXpx9UxEFeVEkY=',
      'P:busybox',
      'V:1.36.1-r5',
      'A:x86_64',
      'S:508746',
      'I:950272',
      'T:Size optimized toolbox of many common UNIX utilities',
      'U:https://busybox.net/',
      'L:GPL-2.0-only',
      'o:busybox',
      'm:Sören Tempel <soeren+alpine@soeren-tempel.net>',
      't:1700492185',
      'c:0c5ca4a6ac9a4ac8f2fdd4c8b14d73b6d3b6d2d4',
      'D:so:libc.musl-x86_64.so.1',
      'p:/bin/sh cmd:busybox=1.36.1-r5',
      'F:bin',
      'R:busybox',
      'a:0:0:755',
      `Z:${q1(FILES['/bin/busybox'])}`,
      'F:etc',
      'R:motd',
      `Z:${q1(FILES['/etc/motd'])}`,
      '',
      // curl: SHA-256 digests (Q2).
      'C:Q2hjwUNu5LGy5SWpwvx3t6ILuGW3EBbrNNuTbnHWGsrk0=',
      'P:curl',
      'V:8.5.0-r0',
      'A:x86_64',
      't:1701850000',
      'o:curl',
      'F:usr',
      'M:0:0:755',
      'F:usr/bin',
      'R:curl',
      'a:0:0:755',
      `Z:${q2(FILES['/usr/bin/curl'])}`,
      'F:usr/lib',
      'R:libcurl.so.4',
      `Z:${q2(FILES['/usr/lib/libcurl.so.4'])}`,
      '',
    ].join('\n'),
  );
  return root;
}

describe('apk collector', () => {
  it('reads packages and both digest kinds, as hex the agent can compare', async () => {
    const got = (await apkCollector.collect(await openRoot(makeRoot('read'))))!;
    expect(got.warnings).toEqual([]);
    expect(got.packages).toEqual([
      { ecosystem: 'apk', name: 'busybox', version: '1.36.1-r5', arch: 'x86_64' },
      { ecosystem: 'apk', name: 'curl', version: '8.5.0-r0', arch: 'x86_64' },
    ]);
    expect(got.owned.get('/bin/busybox')).toEqual({ owner: { ecosystem: 'apk', name: 'busybox' }, conffile: false, digest: { algo: 'sha1', hex: createHash('sha1').update(FILES['/bin/busybox']).digest('hex') }, mode: '0755' });
    expect(got.owned.get('/usr/bin/curl')?.digest).toEqual({ algo: 'sha256', hex: createHash('sha256').update(FILES['/usr/bin/curl']).digest('hex') });
    expect(got.owned.get('/etc/motd')?.conffile).toBe(true);
  });

  it('accepts the hex form of a digest and refuses a digest of the wrong length', () => {
    const hex = createHash('sha256').update('x').digest('hex');
    expect(parseApkDigest(`X2${hex}`)).toEqual({ algo: 'sha256', hex });
    expect(parseApkDigest('Q1AAAA')).toBeNull();
    expect(parseApkDigest('md5:abc')).toBeNull();
  });

  it('names the line of every malformed field and keeps reading', () => {
    const { packages, errors } = parseApkInstalled('P:a\nV:1\nR:orphan\nF:usr\nR:../escape\nZ:Q9zzz\nthis is not a field\n\nP:b\n', 'installed');
    expect(packages.map((p) => p.name)).toEqual(['a']);
    expect(errors).toEqual([
      'installed:3: R: before any F: line',
      'installed:5: file name "../escape" is not a plain name',
      'installed:6: unrecognised digest "Q9zzz"',
      'installed:7: not a "X:value" field',
      'installed:9: record without P: or V: skipped',
    ]);
  });

  it('catches a tampered file through either digest kind with a package-only manifest', async () => {
    const root = makeRoot('tamper');
    const sbom = parseSbom(
      {
        bomFormat: 'CycloneDX',
        specVersion: '1.5',
        components: [
          { name: 'busybox', version: '1.36.1-r5', purl: 'pkg:apk/alpine/busybox@1.36.1-r5?arch=x86_64' },
          { name: 'curl', version: '8.5.0-r0', purl: 'pkg:apk/alpine/curl@8.5.0-r0?arch=x86_64' },
        ],
      },
      'alpine.cdx.json',
    );
    const manifest = manifestFromSbom(sbom.packages, { name: 'alpine', version: '3.19' }, new Date());
    expect((await scanRoot(await openRoot(root), manifest, { hostname: 'a' })).findings).toEqual([]);
    appendFileSync(path.join(root, 'bin/busybox'), 'x');
    appendFileSync(path.join(root, 'usr/lib/libcurl.so.4'), 'x');
    appendFileSync(path.join(root, 'etc/motd'), 'edited by the admin\n');
    // The mode apk recorded (a:0:0:755) stands in for a file record too.
    chmodSync(path.join(root, 'usr/bin/curl'), 0o4755);
    const report = await scanRoot(await openRoot(root), manifest, { hostname: 'a' });
    expect(report.findings.map((f) => [f.kind, f.severity, f.path, f.reason])).toEqual([
      ['file-metadata', 'critical', '/usr/bin/curl', 'setuid/setgid bit added'],
      ['file-modified', 'critical', '/bin/busybox', expect.stringContaining("apk package busybox's own digest")],
      ['file-modified', 'critical', '/usr/lib/libcurl.so.4', expect.stringContaining("apk package curl's own digest")],
      ['file-modified', 'medium', '/etc/motd', 'config file of apk package busybox edited'],
    ]);
  });
});
