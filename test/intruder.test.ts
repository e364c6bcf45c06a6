// What a careful intruder does to a real Debian root (debootstrap copies), and what the scan
// says about it: each case with its exact findings and severities, and the look-alikes that
// are not drift.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseReport } from '../shared/report.js';
import type { Finding, Report } from '../shared/report.js';
import { CACHE_DIR, copyTree, ensureMinbase } from './helpers/debian-root.js';
import { runAgent } from './helpers/cli.js';

let workDir: string;
const cleanups: Array<() => void> = [];
const manifests = new Map<string, string>();

beforeAll(() => {
  workDir = mkdtempSync(path.join(CACHE_DIR, 'intruder-'));
});
afterAll(() => {
  for (const c of cleanups) c();
  rmSync(workDir, { recursive: true, force: true });
});

/** The manifest of `root` (built once per name). */
function manifestOf(name: string, root: string, extra: string[] = []): string {
  let file = manifests.get(name);
  if (file) return file;
  file = path.join(workDir, `${name}.manifest.json.gz`);
  const r = runAgent(['manifest', '--root', root, '--name', name, '--image-version', '1', '--out', file, ...extra]);
  expect(r.code, r.stderr).toBe(0);
  manifests.set(name, file);
  return file;
}

function scan(root: string, manifest: string): { report: Report; human: string } {
  const r = runAgent(['scan', '--root', root, '--manifest', manifest, '--json']);
  expect(r.code === 0 || r.code === 1, r.stderr).toBe(true);
  const human = runAgent(['scan', '--root', root, '--manifest', manifest]).stdout;
  return { report: parseReport(JSON.parse(r.stdout), 'scan output'), human };
}

function copy(source: string): string {
  const c = copyTree(source);
  cleanups.push(c.remove);
  return c.dir;
}

const brief = (f: Finding): string => [f.kind, f.severity, f.path ?? `${f.ecosystem}:${f.name}`, f.owner ? `owner=${f.owner.name}` : ''].filter(Boolean).join(' ');
const all = (fs: readonly Finding[]): Finding[] => fs.flatMap((f) => [f, ...all(f.changes ?? [])]);

describe('file capabilities (setcap)', () => {
  let minbase: string;
  beforeAll(() => {
    minbase = manifestOf('minbase', ensureMinbase());
  });

  it('a capability put on a package binary and a new file that carries one are critical', () => {
    const dir = copy(ensureMinbase());
    execFileSync('setcap', ['cap_net_raw+ep', path.join(dir, 'usr/bin/tar')]);
    copyFileSync(path.join(dir, 'usr/bin/true'), path.join(dir, 'usr/local/bin/sniff'));
    execFileSync('setcap', ['cap_net_admin,cap_net_raw+eip', path.join(dir, 'usr/local/bin/sniff')]);
    const { report, human } = scan(dir, minbase);
    expect(report.findings.map(brief).sort()).toEqual(['file-added critical /usr/local/bin/sniff', 'file-metadata critical /usr/bin/tar owner=tar']);
    const tar = report.findings.find((f) => f.path === '/usr/bin/tar')!;
    expect(tar).toMatchObject({ before: { capability: '' }, after: { capability: 'cap_net_raw=ep' }, reason: 'file capabilities added: cap_net_raw=ep' });
    expect(report.findings.find((f) => f.path === '/usr/local/bin/sniff')!.reason).toBe('new file with capabilities: cap_net_admin,cap_net_raw=eip');
    expect(human).toContain('file-metadata   /usr/bin/tar [dpkg tar] capability none -> cap_net_raw=ep: file capabilities added: cap_net_raw=ep');
  });

  describe('against an image that ships a capability', () => {
    let dir: string;
    let manifest: string;
    beforeAll(() => {
      const image = copy(ensureMinbase());
      execFileSync('setcap', ['cap_net_raw+ep', path.join(image, 'usr/bin/tar')]);
      manifest = manifestOf('capped', image);
      dir = copy(image);
    });

    it('records it in the manifest, and an unchanged copy is clean', () => {
      expect(scan(dir, manifest).report.findings).toEqual([]);
    });

    it('a capability removed and put back is not drift', () => {
      execFileSync('setcap', ['-r', path.join(dir, 'usr/bin/tar')]);
      execFileSync('setcap', ['cap_net_raw+ep', path.join(dir, 'usr/bin/tar')]);
      expect(scan(dir, manifest).report.findings).toEqual([]);
    });

    it('a capability widened is critical; one removed is a change, not critical', () => {
      execFileSync('setcap', ['cap_net_raw,cap_sys_admin+ep', path.join(dir, 'usr/bin/tar')]);
      const widened = scan(dir, manifest).report.findings;
      expect(widened.map(brief)).toEqual(['file-metadata critical /usr/bin/tar owner=tar']);
      expect(widened[0]).toMatchObject({ before: { capability: 'cap_net_raw=ep' }, after: { capability: 'cap_net_raw,cap_sys_admin=ep' }, reason: 'file capabilities changed: cap_net_raw,cap_sys_admin=ep' });
      execFileSync('setcap', ['-r', path.join(dir, 'usr/bin/tar')]);
      const removed = scan(dir, manifest).report.findings;
      expect(removed.map(brief)).toEqual(['file-metadata high /usr/bin/tar owner=tar']);
      expect(removed[0]).toMatchObject({ before: { capability: 'cap_net_raw=ep' }, after: { capability: '' } });
    });
  });
});
