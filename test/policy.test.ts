import { describe, expect, it } from 'vitest';
import { compileGlobs, compileGlobsForChildren, DEFAULT_IGNORED } from '../shared/policy.js';
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

  it('answers for a child by its name what the whole matcher answers, below every folder it does not match', () => {
    // A small deterministic generator, so a failure reproduces.
    let x = 11;
    const r = (n: number): number => ((x = (x * 1103515245 + 12345) % 2 ** 31), x % n);
    const pick = (alphabet: string[], len: number): string => Array.from({ length: len }, () => alphabet[r(alphabet.length)]).join('');
    const names = ['a', 'b', 'ab', 'log', 'é', '.x'];
    // Globs of every shape: literal, a literal last segment after `/` or `/**/`, `a**/b` (which
    // matches `/ab`), wildcards last, `/` alone, trailing slashes.
    const shapes = ['/', '/a', '/a/', '/**/b', '/a/**/log', '/a**/b', '**/ab', '/*/log', '/a/*', '/?b', '/a/b*', '/é/.x', '/**'];
    let checked = 0;
    for (let round = 0; round < 300; round++) {
      const patterns = Array.from({ length: 1 + r(4) }, () => (r(2) === 0 ? shapes[r(shapes.length)]! : `/${pick([...names, '/', '*', '**', '?'], 1 + r(4))}`));
      const all = compileGlobs(patterns);
      const globs = compileGlobsForChildren(patterns);
      const walk = (folder: string, depth: number): void => {
        if (depth === 3 || all(folder)) return;
        for (const name of names) {
          const child = folder === '/' ? `/${name}` : `${folder}/${name}`;
          expect([patterns, child, globs.child(name, child)]).toEqual([patterns, child, all(child)]);
          expect(globs.matches(child)).toBe(all(child));
          checked++;
          walk(child, depth + 1);
        }
      };
      walk('/', 0);
    }
    expect(checked).toBeGreaterThan(10_000);
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
