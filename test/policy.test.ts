import { describe, expect, it } from 'vitest';
import { compileGlobs, DEFAULT_IGNORED } from '../shared/policy.js';
import { topLevelTracked } from '../agent/fingerprint/walk.js';
import { parseManifest } from '../shared/manifest.js';

describe('policy globs', () => {
  const ignored = compileGlobs(DEFAULT_IGNORED);

  it('ignores a listed folder and everything below it, but not look-alike siblings', () => {
    expect(ignored('/var/log')).toBe(true);
    expect(ignored('/var/log/apt/history.log')).toBe(true);
    expect(ignored('/var/logger')).toBe(false);
    expect(ignored('/usr/bin/ls')).toBe(false);
  });

  it('matches ** across folders and * within one', () => {
    expect(ignored('/usr/lib/python3/dist-packages/__pycache__/x.pyc')).toBe(true);
    const m = compileGlobs(['/etc/*.bak', '/opt/**/cache']);
    expect(m('/etc/passwd.bak')).toBe(true);
    expect(m('/etc/sub/passwd.bak')).toBe(false);
    expect(m('/opt/a/b/cache/file')).toBe(true);
    expect(m('/opt/cache')).toBe(true);
  });

  it('escapes regex characters in paths', () => {
    const m = compileGlobs(['/etc/a+b.(x)']);
    expect(m('/etc/a+b.(x)')).toBe(true);
    expect(m('/etc/aab.(x)')).toBe(false);
  });

  it('walks nested tracked paths once', () => {
    expect(topLevelTracked(['/usr/local', '/usr', '/etc/', '/etc/ssh'])).toEqual(['/etc', '/usr']);
  });
});

describe('manifest schema', () => {
  it('fills the default policy when a manifest carries none', () => {
    const m = parseManifest({ schema: 'quicksand.manifest/v1', image: { name: 'x', version: '1', createdAt: '2026-11-29T00:00:00.000Z', source: 'kiwi' }, packages: [] }, 'test');
    expect(m.policy.tracked).toContain('/usr');
    expect(m.files).toEqual([]);
  });

  it('rejects relative paths and unknown fields with their location', () => {
    const base = { schema: 'quicksand.manifest/v1', image: { name: 'x', version: '1', createdAt: '2026-11-29T00:00:00.000Z', source: 'root' }, packages: [] };
    expect(() => parseManifest({ ...base, files: [{ path: 'usr/bin', type: 'dir', mode: '0755', uid: 0, gid: 0 }] }, 'm.json')).toThrow(/files\[0\]\.path: expected an absolute path/);
    expect(() => parseManifest({ ...base, extra: 1 }, 'm.json')).toThrow(/m\.json is not a valid.*\n.*extra/);
    expect(() => parseManifest([], 'm.json')).toThrow(/\(document\)/);
  });
});
