// A warm scan skips the paths whose lstat is the one they had when last found clean against the
// same manifest (the git index's idea). Every report must stay exactly what a scan that compares
// every path gives, on a real tree changed the ways a host changes, and verdicts must never
// outlive the manifest or the policy they were reached under.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WalkStats } from '../agent/fingerprint/walk.js';
import { readManifestFile } from '../agent/manifest/io.js';
import { writeManifestStream } from '../agent/manifest/stream.js';
import type { Report } from '../shared/report.js';
import { runAgent } from './helpers/cli.js';
import { fullScan, warmScan } from './helpers/warm-scan.js';

let dir: string;
let root: string;
let state: string;
let manifest: string;
const at = (p: string): string => path.join(root, p);

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'qs-known-clean-'));
  root = path.join(dir, 'root');
  state = path.join(dir, 'state');
  manifest = path.join(dir, 'manifest.json.gz');
  for (const d of ['etc', 'usr/bin', 'usr/lib', 'usr/share/doc', 'opt/app']) mkdirSync(at(d), { recursive: true });
  writeFileSync(at('etc/motd'), 'welcome\n');
  writeFileSync(at('etc/app.conf'), 'port=80\n');
  writeFileSync(at('usr/bin/tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
  writeFileSync(at('usr/bin/other'), '#!/bin/sh\necho other\n', { mode: 0o755 });
  writeFileSync(at('usr/lib/libx.so.1'), 'lib one\n');
  writeFileSync(at('usr/lib/libx.so.2'), 'lib two\n');
  symlinkSync('libx.so.1', at('usr/lib/libx.so'));
  for (let i = 0; i < 20; i++) writeFileSync(at(`usr/share/doc/page-${i}`), `page ${i}\n`);
  writeFileSync(at('opt/app/data'), 'data\n');
  // Paths changed within the racy window are never remembered: let the tree age past it.
  await sleep(2100);
  const r = runAgent(['manifest', '--root', root, '--out', manifest, '--state', state, '--name', 'known-clean', '--image-version', '1', '--quiet']);
  expect(r.code, r.stderr).toBe(0);
}, 30_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A scan as `quicksand-agent scan` runs it (stat cache, clean paths) beside one that compares every path. */
async function scanBoth(file = manifest): Promise<{ got: unknown; want: unknown; stats: WalkStats }> {
  const { report, stats } = await warmScan(root, file, state);
  return { got: report, want: await fullScan(root, file), stats };
}

const kinds = (r: unknown): string[] => (r as Report).findings.map((f) => `${f.kind} ${f.path ?? f.name}`);

describe('a warm scan that skips the paths known clean', () => {
  it('reports nothing on an untouched tree, and takes every path but the link as known clean', async () => {
    const { got, want, stats } = await scanBoth();
    expect(got).toEqual(want);
    expect(kinds(got)).toEqual([]);
    // The symbolic link always comes whole (causes follow links); the tracked folders absent here are not walked.
    expect(stats.knownClean).toBe(stats.files - 1);
    expect(stats.hashed).toBe(0);
  });

  it('takes a file whose times moved (content as it was) as clean once compared again', async () => {
    const now = new Date();
    utimesSync(at('usr/share/doc/page-3'), now, now);
    const { got, want, stats } = await scanBoth();
    expect(got).toEqual(want);
    expect(kinds(got)).toEqual([]);
    expect(stats.knownClean).toBe(stats.files - 2);
  });

  it('sees an edit whose mtime was put back (its ctime moved)', async () => {
    const st = statSync(at('etc/motd'));
    writeFileSync(at('etc/motd'), 'WELCOME\n');
    utimesSync(at('etc/motd'), st.atime, st.mtime);
    const { got, want } = await scanBoth();
    expect(got).toEqual(want);
    expect(kinds(got)).toEqual(['file-modified /etc/motd']);
  });

  it('sees a chmod, a chown and a capability set', async () => {
    chmodSync(at('usr/bin/other'), 0o4755);
    chownSync(at('usr/lib/libx.so.2'), 1234, 1234);
    execFileSync('setcap', ['cap_net_raw+ep', at('usr/bin/tool')]);
    const { got, want } = await scanBoth();
    expect(got).toEqual(want);
    expect(kinds(got).sort()).toEqual(['file-metadata /usr/bin/other', 'file-metadata /usr/bin/tool', 'file-metadata /usr/lib/libx.so.2', 'file-modified /etc/motd']);
  });

  it('sees a file replaced by another, a path gone, a path added and a link retargeted', async () => {
    writeFileSync(path.join(dir, 'swap'), 'page 5 is not what it was\n');
    renameSync(path.join(dir, 'swap'), at('usr/share/doc/page-5'));
    unlinkSync(at('usr/share/doc/page-7'));
    writeFileSync(at('usr/share/doc/page-70'), 'new\n');
    unlinkSync(at('usr/lib/libx.so'));
    symlinkSync('libx.so.2', at('usr/lib/libx.so'));
    const { got, want } = await scanBoth();
    expect(got).toEqual(want);
    expect(kinds(got)).toEqual(expect.arrayContaining(['file-modified /usr/share/doc/page-5', 'file-removed /usr/share/doc/page-7', 'file-added /usr/share/doc/page-70', 'file-metadata /usr/lib/libx.so']));
    // Twice: what this scan remembered must not hide any of it from the next.
    const again = await scanBoth();
    expect(again.got).toEqual(got);
  });

  it('never takes the verdicts reached against one manifest for another', async () => {
    await sleep(2100);
    const rebaselined = path.join(dir, 'rebaselined.json.gz');
    const r = runAgent(['manifest', '--root', root, '--out', rebaselined, '--state', state, '--name', 'known-clean', '--image-version', '2', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    const fresh = await scanBoth(rebaselined);
    expect(fresh.got).toEqual(fresh.want);
    expect(kinds(fresh.got)).toEqual([]);
    // The link, and the file with a capability: a record with one is compared every time.
    expect(fresh.stats.knownClean).toBe(fresh.stats.files - 2);
    // Back to the first manifest: its drift is all there, and nothing was taken as known clean.
    const old = await scanBoth();
    expect(old.got).toEqual(old.want);
    expect(kinds(old.got).length).toBeGreaterThanOrEqual(8);
    expect(old.stats.knownClean).toBe(0);
    const warm = await scanBoth();
    expect(warm.got).toEqual(old.got);
    expect(warm.stats.knownClean).toBeGreaterThan(0);
  });

  it('never takes verdicts across a change of policy, and keeps them across a package database change', async () => {
    const { files, ...header } = await readManifestFile(manifest);
    const narrower = path.join(dir, 'narrower.json.gz');
    async function* records() {
      yield files;
    }
    await writeManifestStream(narrower, { ...header, policy: { ...header.policy, ignored: [...header.policy.ignored, '/usr/share/doc'] } }, records());
    const policy = await scanBoth(narrower);
    expect(policy.got).toEqual(policy.want);
    expect(policy.stats.knownClean).toBe(0);
    expect(kinds(policy.got).some((k) => k.includes('/usr/share/doc'))).toBe(false);

    mkdirSync(at('var/lib/dpkg'), { recursive: true });
    writeFileSync(at('var/lib/dpkg/status'), 'Package: demo\nStatus: install ok installed\nVersion: 1.0\nArchitecture: all\nMaintainer: x\nDescription: demo\n');
    const first = await scanBoth();
    const second = await scanBoth();
    expect(first.got).toEqual(first.want);
    expect(second.got).toEqual(second.want);
    expect(second.got).toEqual(first.got);
    expect(kinds(second.got)).toContain('package-added demo');
    expect(second.stats.knownClean).toBeGreaterThan(0);
  });
});
