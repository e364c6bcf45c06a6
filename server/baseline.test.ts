import { describe, expect, it } from 'vitest';
import type { FileRecord, Manifest } from '../shared/manifest.js';
import { manifestSchema } from '../shared/manifest.js';
import type { Finding } from '../shared/report.js';
import { deriveBaseline } from './baseline.js';

const sha = (c: string): string => c.repeat(64);
const now = new Date('2026-11-29T12:00:00Z');
const file = (path: string, over: Partial<FileRecord> = {}): FileRecord => ({ path, type: 'file', mode: '0644', uid: 0, gid: 0, size: 3, sha256: sha('a'), ...over });

function manifest(files: FileRecord[], packages: Manifest['packages'] = [{ ecosystem: 'dpkg', name: 'base', version: '1', arch: 'amd64' }]): Manifest {
  return manifestSchema.parse({ schema: 'quicksand.manifest/v1', image: { name: 'web', version: '42', createdAt: '2026-01-01T00:00:00Z', source: 'root' }, packages, files });
}

describe('deriveBaseline', () => {
  const base = manifest([file('/etc/motd'), file('/usr/bin/gone', { mode: '0755' }), file('/usr/bin/tool', { mode: '0755' }), file('/usr/bin/untouched')]);

  it('applies each accepted change: packages from the observation, added files with their observed record, removed files dropped', () => {
    const observation = manifest(
      [file('/etc/motd', { sha256: sha('b') }), file('/usr/bin/tool', { mode: '4755' }), file('/usr/bin/untouched'), file('/usr/local/bin/new', { mode: '0755', sha256: sha('c'), size: 9 })],
      [{ ecosystem: 'dpkg', name: 'base', version: '1', arch: 'amd64' }, { ecosystem: 'dpkg', name: 'nc', version: '1.2', arch: 'amd64' }],
    );
    const accepted: Finding[] = [
      { kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: 'nc', after: '1.2', changes: [{ kind: 'file-added', severity: 'high', path: '/usr/local/bin/new' }] },
      { kind: 'file-modified', severity: 'medium', path: '/etc/motd', before: sha('a'), after: sha('b') },
      { kind: 'file-metadata', severity: 'critical', path: '/usr/bin/tool', before: { mode: '0755' }, after: { mode: '4755' } },
      { kind: 'file-removed', severity: 'high', path: '/usr/bin/gone' },
    ];
    const { manifest: next, notes } = deriveBaseline(base, accepted, observation, now);
    expect(notes).toEqual([]);
    expect(next.image).toEqual({ name: 'web', version: '42', createdAt: now.toISOString(), source: 'root' });
    expect(next.packages.map((p) => `${p.name} ${p.version} ${p.arch}`)).toEqual(['base 1 amd64', 'nc 1.2 amd64']);
    expect(next.files).toEqual([
      file('/etc/motd', { sha256: sha('b') }),
      file('/usr/bin/tool', { mode: '4755' }),
      file('/usr/bin/untouched'),
      file('/usr/local/bin/new', { mode: '0755', sha256: sha('c'), size: 9 }),
    ]);
    expect(manifestSchema.safeParse(next).success).toBe(true);
  });

  it('keeps the accepted state where the host changed again since, and takes nothing that was not accepted', () => {
    // motd changed again after the report (digest c, not the accepted b); a file nobody accepted appeared.
    const observation = manifest([file('/etc/motd', { sha256: sha('c') }), file('/usr/bin/gone', { mode: '0755' }), file('/usr/bin/tool', { mode: '0755' }), file('/usr/bin/untouched'), file('/usr/bin/sneaky')]);
    const accepted: Finding[] = [
      { kind: 'file-modified', severity: 'medium', path: '/etc/motd', before: sha('a'), after: sha('b') },
      { kind: 'file-added', severity: 'high', path: '/usr/bin/vanished' },
    ];
    const { manifest: next, notes } = deriveBaseline(base, accepted, observation, now);
    const motd = next.files.find((f) => f.path === '/etc/motd')!;
    expect(motd.sha256).toBe(sha('b'));
    expect(motd.size).toBeUndefined();
    expect(next.files.map((f) => f.path)).toEqual(['/etc/motd', '/usr/bin/gone', '/usr/bin/tool', '/usr/bin/untouched']);
    expect(notes).toEqual(['file-added /usr/bin/vanished: gone from the host since; not in the new version']);
  });

  it('over a package-only manifest takes the file records of the observation', () => {
    const kiwi = manifestSchema.parse({ ...manifest([]), image: { ...manifest([]).image, source: 'kiwi' } });
    const observation = manifest([file('/usr/bin/tool'), file('/usr/local/bin/new')]);
    const { manifest: next } = deriveBaseline(kiwi, [{ kind: 'file-added', severity: 'high', path: '/usr/local/bin/new' }], observation, now);
    expect(next.image.source).toBe('root');
    expect(next.files.map((f) => f.path)).toEqual(['/usr/bin/tool', '/usr/local/bin/new']);
  });
});
