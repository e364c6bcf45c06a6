import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { runAgentCli } from '../agent/cli.js';
import { kiwiImageIdentity, parseKiwiPackages, parseKiwiVerified } from '../agent/manifest/import-kiwi.js';
import { packageFromPurl, parsePurl, parseSbom } from '../agent/manifest/import-sbom.js';
import { parseManifest } from '../shared/manifest.js';

const work = mkdtempSync(path.join(tmpdir(), 'qs-import-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runAgentCli(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), interactive: false });
  return { code, stdout, stderr };
}

function file(name: string, content: string): string {
  const p = path.join(work, name);
  writeFileSync(p, content);
  return p;
}

// Lines as KIWI writes them for an rpm image (SUSE) and for a deb image.
const SUSE_PACKAGES = [
  'aaa_base|(none)|84.87+git20230815.2b2a3b9|150500.3.3.1|x86_64|obs://build.suse.de/SUSE:Maintenance:30345/SUSE_SLE-15-SP5_Update/0a3bb2b6c8b6c6f9c1f2-aaa_base.SUSE_SLE-15-SP5_Update|GPL-2.0+',
  'bash|(none)|4.4|150400.27.3.2|x86_64|obs://build.suse.de/SUSE:Maintenance:25389/SUSE_SLE-15-SP4_Update/5b6fbf1fcd-bash.SUSE_SLE-15-SP4_Update|GPL-3.0-or-later',
  'gpg-pubkey|(none)|39db7c82|5f68629b|(none)|(none)|pubkey',
  'perl-Bootloader|1|0.947|150400.3.9.1|x86_64|obs://build.suse.de/SUSE:SLE-15-SP4:Update/perl-Bootloader|GPL-2.0-or-later',
].join('\n');
const DEB_PACKAGES = ['bash|None|5.2.15-2+b8|None|amd64|None|None', 'tzdata|None|2024a-0+deb12u1|None|all|None|None'].join('\n');

describe('KIWI import', () => {
  it('reads rpm and deb lines into the agent\'s package records', () => {
    expect(parseKiwiPackages(SUSE_PACKAGES, 'x.packages')).toEqual([
      { ecosystem: 'rpm', name: 'aaa_base', version: '84.87+git20230815.2b2a3b9-150500.3.3.1', arch: 'x86_64' },
      { ecosystem: 'rpm', name: 'bash', version: '4.4-150400.27.3.2', arch: 'x86_64' },
      { ecosystem: 'rpm', name: 'gpg-pubkey', version: '39db7c82-5f68629b' },
      { ecosystem: 'rpm', name: 'perl-Bootloader', version: '1:0.947-150400.3.9.1', arch: 'x86_64' },
    ]);
    expect(parseKiwiPackages(DEB_PACKAGES, 'x.packages')).toEqual([
      { ecosystem: 'dpkg', name: 'bash', version: '5.2.15-2+b8', arch: 'amd64' },
      { ecosystem: 'dpkg', name: 'tzdata', version: '2024a-0+deb12u1', arch: 'all' },
    ]);
    expect(kiwiImageIdentity('SLES15-SP5-Minimal.x86_64-15.5.0.packages')).toEqual({ name: 'SLES15-SP5-Minimal', version: '15.5.0' });
  });

  it('names the line of a malformed .packages or .verified entry', () => {
    expect(() => parseKiwiPackages('bash|None|5.2|None|amd64|None|None\nbroken line\n', 'img.packages')).toThrow('img.packages:2: expected name|epoch|version|release|arch|disturl|license, got 1 field');
    expect(() => parseKiwiPackages('bash|x|5.2|1|x86_64|a|b\n', 'img.packages')).toThrow('img.packages:1: epoch "x" of bash is not a number');
    expect(() => parseKiwiPackages('bash|(none)|(none)|1|x86_64|a|b\n', 'img.packages')).toThrow('img.packages:1: package bash has no version');
    expect(() => parseKiwiVerified('S.5....T.  c /etc/sysconfig/x\nmissing     /usr/share/doc/y\nsomething odd\n', 'img.verified')).toThrow(/^img\.verified:3: expected rpm -V output/);
    expect(parseKiwiVerified('S.5....T.  c /etc/sysconfig/x\nUnsatisfied dependencies for foo-1-1.noarch:\n\tbar is needed by foo-1-1.noarch\nmissing     /usr/share/doc/y\n', 'v')).toEqual(['/etc/sysconfig/x', '/usr/share/doc/y']);
  });

  it('writes a package-only manifest from the command line, with .verified paths mutable', async () => {
    const packages = file('SLES15.x86_64-15.5.0.packages', SUSE_PACKAGES);
    const verified = file('SLES15.x86_64-15.5.0.verified', '.M.......  c /etc/sudoers\n');
    const out = path.join(work, 'kiwi.json.gz');
    const r = await cli(['manifest', '--from-kiwi', packages, '--verified', verified, '--out', out]);
    expect(r.stderr).toContain('4 packages');
    expect(r.code).toBe(0);
    const manifest = parseManifest(JSON.parse(gunzipSync(readFileSync(out)).toString('utf8')), out);
    expect(manifest.image).toMatchObject({ name: 'SLES15', version: '15.5.0', source: 'kiwi' });
    expect(manifest.files).toEqual([]);
    expect(manifest.policy.mutable).toContain('/etc/sudoers');
  });

  it('refuses a malformed file with exit 2 and the line in the message', async () => {
    const bad = file('bad.packages', 'bash|None|5.2|None|amd64|None|None\n\nzsh\n');
    const r = await cli(['manifest', '--from-kiwi', bad, '--out', path.join(work, 'never.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}:3: expected name|epoch|version|release|arch|disturl|license`);
    expect((await cli(['manifest', '--from-kiwi', bad, '--root', '/', '--out', path.join(work, 'x.json')])).stderr).toContain('use one of --root, --from-kiwi and --from-sbom');
    expect((await cli(['manifest', '--root', '/nonexistent', '--verified', bad, '--out', path.join(work, 'x.json')])).stderr).toContain('--verified goes with --from-kiwi');
  });
});

describe('SBOM import', () => {
  it('takes ecosystems, names and versions from purls', () => {
    const rec = (purl: string, version?: string) => packageFromPurl(parsePurl(purl)!, version);
    expect(rec('pkg:deb/debian/bash@5.2.15-2%2Bb8?arch=amd64&distro=debian-12')).toEqual({ ecosystem: 'dpkg', name: 'bash', version: '5.2.15-2+b8', arch: 'amd64' });
    expect(rec('pkg:rpm/fedora/curl@7.50.3-1.fc25?arch=i386&epoch=1')).toEqual({ ecosystem: 'rpm', name: 'curl', version: '1:7.50.3-1.fc25', arch: 'i386' });
    expect(rec('pkg:pypi/Django_Rest.Framework@3.14.0')).toEqual({ ecosystem: 'pip', name: 'django-rest-framework', version: '3.14.0' });
    expect(rec('pkg:npm/%40angular/core@17.0.1')).toEqual({ ecosystem: 'npm', name: '@angular/core', version: '17.0.1' });
    expect(rec('pkg:gem/rails@7.1.2')).toEqual({ ecosystem: 'gem', name: 'rails', version: '7.1.2' });
    expect(rec('pkg:cpan/Qs::Fix', '0.05')).toEqual({ ecosystem: 'cpan', name: 'Qs::Fix', version: '0.05' });
    expect(rec('pkg:golang/github.com/x/y@1.0.0')).toBeNull();
    expect(parsePurl('not-a-purl')).toBeNull();
  });

  it('reads CycloneDX (nested components too) and SPDX JSON', () => {
    const cdx = parseSbom(
      {
        bomFormat: 'CycloneDX',
        specVersion: '1.5',
        metadata: { component: { name: 'web', version: '42' } },
        components: [
          { type: 'library', name: 'bash', version: '5.2.15-2+b8', purl: 'pkg:deb/debian/bash@5.2.15-2%2Bb8?arch=amd64', components: [{ name: 'x', purl: 'pkg:pypi/requests@2.31.0' }] },
          { type: 'file', name: 'no purl here' },
        ],
      },
      'web.cdx.json',
    );
    expect(cdx).toMatchObject({ format: 'cyclonedx', image: { name: 'web', version: '42' }, skipped: 1 });
    expect(cdx.packages.map((p) => `${p.ecosystem}:${p.name}`)).toEqual(['dpkg:bash', 'pip:requests']);
    const spdx = parseSbom(
      {
        spdxVersion: 'SPDX-2.3',
        name: 'web-image',
        packages: [
          { SPDXID: 'SPDXRef-1', name: 'libc6', versionInfo: '2.36-9+deb12u4', externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: 'pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64' }] },
          { SPDXID: 'SPDXRef-2', name: 'left-pad', versionInfo: '1.3.0', externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: 'pkg:npm/left-pad@1.3.0' }] },
        ],
      },
      'web.spdx.json',
    );
    expect(spdx.packages).toEqual([
      { ecosystem: 'dpkg', name: 'libc6', version: '2.36-9+deb12u4', arch: 'amd64' },
      { ecosystem: 'npm', name: 'left-pad', version: '1.3.0' },
    ]);
  });

  it('names the JSON path of what is wrong', () => {
    expect(() => parseSbom({ bomFormat: 'CycloneDX', components: [{ name: 'a', purl: 'pkg:npm/a@1' }, { name: 'b', version: 3 }] }, 's.json')).toThrow('s.json: components[1].version: expected a string, got number');
    expect(() => parseSbom({ bomFormat: 'CycloneDX', components: [{ name: 'a', components: [{ purl: 'oops' }] }] }, 's.json')).toThrow('s.json: components[0].components[0].purl: "oops" is not a package URL');
    expect(() => parseSbom({ spdxVersion: 'SPDX-2.3', packages: [{ name: 'a', externalRefs: [{ referenceType: 'purl', referenceLocator: 7 }] }] }, 's.json')).toThrow('s.json: packages[0].externalRefs[0].referenceLocator: expected a string, got number');
    expect(() => parseSbom({ spdxVersion: 'SPDX-2.3', packages: {} }, 's.json')).toThrow('s.json: packages: expected an array');
    expect(() => parseSbom([], 's.json')).toThrow('s.json: (document): expected a JSON object');
    expect(() => parseSbom({ hello: 1 }, 's.json')).toThrow('s.json: (document): neither CycloneDX');
  });

  it('refuses broken JSON and an SBOM without usable packages from the command line', async () => {
    const broken = file('broken.json', '{"bomFormat": "CycloneDX", "components": [');
    let r = await cli(['manifest', '--from-sbom', broken, '--out', path.join(work, 'x.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${broken}: not JSON`);
    const empty = file('empty.json', JSON.stringify({ bomFormat: 'CycloneDX', components: [{ name: 'x', purl: 'pkg:golang/x@1' }] }));
    r = await cli(['manifest', '--from-sbom', empty, '--out', path.join(work, 'x.json')]);
    expect(r.stderr).toContain('no package with a purl of a known ecosystem');
    const good = file('good.json', JSON.stringify({ bomFormat: 'CycloneDX', metadata: { component: { name: 'web', version: '7' } }, components: [{ name: 'bash', purl: 'pkg:deb/debian/bash@5.2' }] }));
    r = await cli(['manifest', '--from-sbom', good, '--out', path.join(work, 'sbom.json')]);
    expect(r.code).toBe(0);
    expect(parseManifest(JSON.parse(readFileSync(path.join(work, 'sbom.json'), 'utf8')), 'sbom.json').image).toMatchObject({ name: 'web', version: '7', source: 'sbom' });
  });
});
