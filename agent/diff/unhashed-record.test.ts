import { describe, expect, it } from 'vitest';
import type { Manifest } from '../../shared/manifest.js';
import { defaultPolicy } from '../../shared/policy.js';
import type { OwnedFile } from '../collect/types.js';
import { diff } from './differ.js';

// A manifest made while a file could not be read keeps its record without a digest: the scan
// must not call the file tampered (nor its database forged) for that alone.
describe('a manifest record without a digest', () => {
  const owner = { ecosystem: 'dpkg' as const, name: 'adduser' };
  const record = { path: '/usr/sbin/adduser', type: 'file' as const, mode: '0755', uid: 0, gid: 0, size: 3, owner };
  const manifest: Manifest = {
    schema: 'quicksand.manifest/v1',
    image: { name: 'x', version: '1', createdAt: '2026-12-01T00:00:00.000Z', source: 'root' },
    policy: defaultPolicy(),
    packages: [{ ecosystem: 'dpkg', name: 'adduser', version: '3.134' }],
    files: [record],
  };
  const owned = new Map<string, OwnedFile>([[record.path, { owner, conffile: false, digest: { algo: 'md5', hex: 'a'.repeat(32) } }]]);
  const obs = { packages: manifest.packages, owned, files: [{ ...record, sha256: 'b'.repeat(64) }] };

  it('is checked against the package database instead', () => {
    expect(diff(manifest, obs, new Map([[record.path, 'match']]))).toEqual([]);
    expect(diff(manifest, obs, new Map([[record.path, 'mismatch']])).map((f) => [f.kind, f.severity])).toEqual([['file-modified', 'critical']]);
  });
});
