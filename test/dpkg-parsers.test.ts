import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { installedPackages, parseDpkgStatus, parseList, parseMd5sums } from '../agent/collect/dpkg.js';

// Captured from a debootstrap'ed bookworm minbase; adduser was removed with `dpkg -r` so its
// stanza is in the real `deinstall ok config-files` state.
const fixture = (name: string): string => readFileSync(new URL(`./fixtures/dpkg/${name}`, import.meta.url), 'utf8');

describe('dpkg status parser', () => {
  const stanzas = parseDpkgStatus(fixture('status'));

  it('splits the file into one stanza per package, with the line each starts on', () => {
    expect(stanzas.map((s) => s.fields.get('Package'))).toEqual(['adduser', 'base-files', 'bash', 'libc6']);
    expect(stanzas[0]!.line).toBe(1);
  });

  it('keeps continuation lines of multi-line fields', () => {
    const bash = stanzas.find((s) => s.fields.get('Package') === 'bash')!;
    expect(bash.fields.get('Conffiles')!.split('\n').filter(Boolean)).toHaveLength(4);
    expect(bash.fields.get('Description')).toContain('\n');
  });

  it('keeps installed packages only, with version, arch, multi-arch and conffile digests', () => {
    const pkgs = installedPackages(stanzas);
    expect(pkgs.map((p) => p.name)).toEqual(['base-files', 'bash', 'libc6']); // adduser is config-files only
    const libc = pkgs.find((p) => p.name === 'libc6')!;
    expect(libc).toMatchObject({ arch: 'amd64', multiArchSame: true });
    const bash = pkgs.find((p) => p.name === 'bash')!;
    expect(bash.version).toMatch(/^5\.2/);
    expect(bash.conffiles.get('/etc/bash.bashrc')).toBe('89269e1298235f1b12b4c16e4065ad0d');
  });

  it('does not choke on a truncated file or stray lines', () => {
    const text = fixture('status');
    const cut = parseDpkgStatus(`garbage without colon\n${text.slice(0, text.length / 2)}`);
    expect(cut.length).toBeGreaterThan(0);
    expect(() => installedPackages(cut)).not.toThrow();
  });
});

describe('dpkg info files', () => {
  it('reads md5sums lines into absolute paths', () => {
    const sums = parseMd5sums(fixture('bash.md5sums'));
    expect(sums.size).toBe(12);
    for (const [path, md5] of sums) {
      expect(path.startsWith('/')).toBe(true);
      expect(md5).toMatch(/^[0-9a-f]{32}$/);
    }
  });

  it('reads .list paths and drops the root entry', () => {
    const list = parseList(fixture('bash.list'));
    expect(list).not.toContain('/.');
    expect(list).toContain('/bin');
    expect(list.every((p) => p.startsWith('/'))).toBe(true);
  });
});
