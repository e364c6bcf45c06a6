import { describe, expect, it } from 'vitest';
import { MANIFEST_SCHEMA } from '../../shared/manifest.js';
import type { Manifest } from '../../shared/manifest.js';
import { defaultPolicy } from '../../shared/policy.js';
import type { OwnedFile } from '../collect/types.js';
import type { ObservedFile } from '../fingerprint/walk.js';
import { diff } from './differ.js';
import { diffInScope, inScope } from './scoped-diff.js';
import { changedPackages, isPackageRecord } from '../daemon/watch.js';

const sha = (c: string): string => c.repeat(64);
const dir = (path: string): ObservedFile => ({ path, type: 'dir', mode: '0755', uid: 0, gid: 0 });
const file = (path: string, digest: string, mode = '0644'): ObservedFile => ({ path, type: 'file', mode, uid: 0, gid: 0, size: 1, sha256: sha(digest) });

const manifest: Manifest = {
  schema: MANIFEST_SCHEMA,
  image: { name: 'img', version: '1', createdAt: '2026-11-29T00:00:00.000Z', source: 'root' },
  policy: defaultPolicy(),
  packages: [{ ecosystem: 'dpkg', name: 'coreutils', version: '9.1', arch: 'amd64' }],
  files: [dir('/usr'), dir('/usr/bin'), { ...file('/usr/bin/ls', 'a', '0755'), owner: { ecosystem: 'dpkg', name: 'coreutils' } }, dir('/etc'), file('/etc/motd', 'b'), dir('/opt'), dir('/opt/app'), file('/opt/app/x', 'c')],
};
const owned = new Map<string, OwnedFile>([['/usr/bin/ls', { owner: { ecosystem: 'dpkg', name: 'coreutils' }, conffile: false }]]);

describe('diff restricted to a scope', () => {
  it('finds nothing outside the scope, even where the host differs', () => {
    // Only /etc/motd was read again; /usr/bin/ls is absent from the observation but out of scope.
    const findings = diffInScope(manifest, { packages: manifest.packages, owned, files: [file('/etc/motd', 'd')] }, new Map(), { paths: ['/etc/motd'], subtrees: [], packages: false });
    expect(findings.map((f) => `${f.kind} ${f.path}`)).toEqual(['file-modified /etc/motd']);
  });

  it('reports what vanished below a subtree in scope', () => {
    const findings = diffInScope(manifest, { packages: manifest.packages, owned, files: [] }, new Map(), { paths: [], subtrees: ['/opt/app'], packages: false });
    expect(findings.map((f) => `${f.kind} ${f.path}`).sort()).toEqual(['file-removed /opt/app', 'file-removed /opt/app/x']);
  });

  it('gives in-scope findings the severity the full diff gives them', () => {
    const files = [...manifest.files.filter((f) => f.path !== '/usr/bin/ls'), { ...file('/usr/bin/ls', 'e', '0755') }];
    const full = diff(manifest, { packages: manifest.packages, owned, files }, new Map());
    const scoped = diffInScope(manifest, { packages: manifest.packages, owned, files: [file('/usr/bin/ls', 'e', '0755')] }, new Map(), { paths: ['/usr/bin/ls'], subtrees: [], packages: false });
    expect(scoped).toEqual(full);
    expect(scoped[0]).toMatchObject({ kind: 'file-modified', severity: 'critical' });
  });

  it('leaves package findings out unless the package databases were read, keeping their files', () => {
    const packages = [...manifest.packages, { ecosystem: 'dpkg' as const, name: 'nmap', version: '7', arch: 'amd64' }];
    const nmapOwned = new Map(owned).set('/usr/bin/nmap', { owner: { ecosystem: 'dpkg', name: 'nmap' }, conffile: false });
    const obs = { packages, owned: nmapOwned, files: [file('/usr/bin/nmap', 'f', '0755')] };
    const without = diffInScope(manifest, obs, new Map(), { paths: ['/usr/bin/nmap'], subtrees: [], packages: false });
    expect(without.map((f) => `${f.kind} ${f.path} ${f.owner?.name}`)).toEqual(['file-added /usr/bin/nmap nmap']);
    const withPkgs = diffInScope(manifest, obs, new Map(), { paths: ['/usr/bin/nmap'], subtrees: [], packages: true });
    expect(withPkgs.map((f) => `${f.kind} ${f.name}`)).toEqual(['package-added nmap']);
    expect(withPkgs[0]!.changes!.map((c) => c.path)).toEqual(['/usr/bin/nmap']);
  });

  it('follows links outside the scope to the package that caused a change', () => {
    // Merged /usr: /bin -> usr/bin is in the manifest and untouched; an install adds
    // /usr/bin/nc -> /etc/alternatives/nc -> /bin/nc.openbsd. Only the two links are in scope.
    const link = (path: string, target: string): ObservedFile => ({ path, type: 'symlink', mode: '0777', uid: 0, gid: 0, target });
    const m: Manifest = { ...manifest, files: [...manifest.files, link('/bin', 'usr/bin'), dir('/etc/alternatives')] };
    const packages = [...m.packages, { ecosystem: 'dpkg' as const, name: 'netcat-openbsd', version: '1.219-1', arch: 'amd64' }];
    const nc = new Map(owned).set('/usr/bin/nc.openbsd', { owner: { ecosystem: 'dpkg', name: 'netcat-openbsd' }, conffile: false });
    const fresh = [link('/usr/bin/nc', '/etc/alternatives/nc'), link('/etc/alternatives/nc', '/bin/nc.openbsd')];
    const scope = { paths: ['/etc/alternatives/nc', '/usr/bin/nc'], subtrees: [], packages: true };
    const scoped = diffInScope(m, { packages, owned: nc, files: fresh }, new Map(), scope);
    expect(scoped.map((f) => `${f.kind} ${f.name}`)).toEqual(['package-added netcat-openbsd']);
    expect(scoped[0]!.changes!.map((c) => c.path)).toEqual(['/etc/alternatives/nc', '/usr/bin/nc']);
    // The same as the whole diff says for those paths.
    const whole = diff(m, { packages, owned: nc, files: [...m.files, ...fresh] }, new Map());
    expect(scoped).toEqual(whole);
  });

  it('matches exact paths and whole subtrees', () => {
    const has = inScope({ paths: ['/etc/motd'], subtrees: ['/opt/app'], packages: false });
    expect(['/etc/motd', '/opt/app', '/opt/app/x/y'].every(has)).toBe(true);
    expect(['/etc', '/etc/motd2', '/opt/apple', '/opt'].some(has)).toBe(false);
  });

  it('knows a language package’s own records when they change', () => {
    for (const p of [
      '/usr/local/lib/python3.11/dist-packages/requests-2.31.0.dist-info/RECORD',
      '/usr/lib/python3/dist-packages/six-1.16.0.egg-info',
      '/usr/share/gems/specifications/rake-13.0.6.gemspec',
      '/usr/local/lib/node_modules/@acme/cli/package.json',
      '/usr/local/lib/node_modules/left-pad/package.json',
      '/usr/local/lib/x86_64-linux-gnu/perl/5.36.0/auto/Foo/.packlist',
      '/usr/local/lib/x86_64-linux-gnu/perl/5.36.0/perllocal.pod',
    ])
      expect(isPackageRecord(p), p).toBe(true);
    for (const p of ['/usr/bin/python3', '/usr/local/lib/node_modules/left-pad/lib/package.json', '/etc/dist-info.conf', '/usr/share/doc/specifications/x.txt'])
      expect(isPackageRecord(p), p).toBe(false);
  });

  it('names the packages added, removed or changed between two reads', () => {
    const a = [
      { ecosystem: 'dpkg' as const, name: 'x', version: '1' },
      { ecosystem: 'dpkg' as const, name: 'y', version: '1' },
      { ecosystem: 'dpkg' as const, name: 'z', version: '1' },
    ];
    const b = [a[0]!, { ecosystem: 'dpkg' as const, name: 'y', version: '2' }, { ecosystem: 'pip' as const, name: 'w', version: '1' }];
    expect([...changedPackages(a, b)].sort()).toEqual(['dpkg:y', 'dpkg:z', 'pip:w']);
  });
});
