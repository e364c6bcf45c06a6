// Bad input gets a clear error naming the file and what was wrong, exit 2, and never a stack
// trace; odd things in a root (FIFO, dangling link, non-UTF-8 name, unreadable file) are handled.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseReport } from '../shared/report.js';
import { hasStackTrace, runAgent } from './helpers/cli.js';

let dir: string;
let root: string;
let goodManifest: string;

beforeAll(() => {
  // World-readable so the unprivileged run below can use it.
  dir = mkdtempSync(path.join(tmpdir(), 'quicksand-cli-'));
  chmodSync(dir, 0o777);
  root = path.join(dir, 'root');
  mkdirSync(path.join(root, 'usr/local/bin'), { recursive: true });
  mkdirSync(path.join(root, 'etc'), { recursive: true });
  writeFileSync(path.join(root, 'usr/local/bin/tool'), '#!/bin/sh\n', { mode: 0o755 });
  writeFileSync(path.join(root, 'etc/app.conf'), 'a=1\n');
  goodManifest = path.join(dir, 'good.json');
  const r = runAgent(['manifest', '--root', root, '--out', goodManifest, '--name', 'tiny', '--image-version', '1']);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function expectUserError(args: string[], message: RegExp): void {
  const r = runAgent(args);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(message);
  expect(hasStackTrace(r.stderr)).toBe(false);
  expect(r.stdout).toBe('');
}

function writeManifest(name: string, content: string | Buffer): string {
  const file = path.join(dir, name);
  writeFileSync(file, content);
  return file;
}

describe('bad manifests', () => {
  it('names a manifest that is not JSON', () => {
    const file = writeManifest('not-json.json', '{"schema": "quicksand.manifest/v1", ');
    expectUserError(['scan', '--root', root, '--manifest', file], new RegExp(`manifest ${file} is not valid JSON.*cut short`));
  });

  it('names a truncated gzipped manifest', () => {
    const gz = gzipSync(readFileSync(goodManifest));
    const file = writeManifest('cut.json.gz', gz.subarray(0, gz.length - 20));
    expectUserError(['scan', '--root', root, '--manifest', file], /gzipped but the data is damaged or cut short/);
  });

  it('names an empty manifest file', () => {
    expectUserError(['scan', '--root', root, '--manifest', writeManifest('empty.json', '')], /not valid JSON \(the file is empty\)/);
  });

  it('tells a manifest of another schema version apart', () => {
    const doc = { ...JSON.parse(readFileSync(goodManifest, 'utf8')), schema: 'quicksand.manifest/v2' };
    expectUserError(['scan', '--root', root, '--manifest', writeManifest('v2.json', JSON.stringify(doc))], /schema is "quicksand\.manifest\/v2", this agent reads "quicksand\.manifest\/v1"/);
  });

  it('names the path of each missing or wrong field', () => {
    const doc = JSON.parse(readFileSync(goodManifest, 'utf8'));
    delete doc.image.name;
    doc.files[1].mode = '755';
    doc.packages = [{ ecosystem: 'dpkg', version: '1' }];
    const r = runAgent(['scan', '--root', root, '--manifest', writeManifest('fields.json', JSON.stringify(doc))]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is not a valid quicksand.manifest/v1 manifest');
    expect(r.stderr).toMatch(/image\.name: /);
    expect(r.stderr).toMatch(/files\[1\]\.mode: expected an octal mode like "0755"/);
    expect(r.stderr).toMatch(/packages\[0\]\.name: /);
    expect(hasStackTrace(r.stderr)).toBe(false);
  });

  it('says how to make a manifest that does not exist', () => {
    expectUserError(['scan', '--root', root, '--manifest', path.join(dir, 'nope.json')], /does not exist: build one with `quicksand-agent manifest/);
  });
});

describe('bad command lines', () => {
  it('refuses a root that does not exist', () => {
    expectUserError(['scan', '--root', path.join(dir, 'missing'), '--manifest', goodManifest], /root .*missing does not exist/);
    expectUserError(['manifest', '--root', path.join(dir, 'missing'), '--out', path.join(dir, 'x.json')], /does not exist/);
  });

  it('refuses an output folder that does not exist', () => {
    expectUserError(['manifest', '--root', root, '--out', path.join(dir, 'no/such/dir/m.json')], /--out: folder .* does not exist/);
  });

  it('names a missing required option and an unknown one, pointing at --help', () => {
    expectUserError(['scan', '--root', root], /--manifest is required \(see quicksand-agent scan --help\)/);
    expectUserError(['scan', '--manifest', goodManifest, '--bogus'], /unknown option --bogus; options: .*--manifest.*--help/);
    expectUserError(['frobnicate'], /unknown command "frobnicate"/);
  });

  it('teaches every command with --help', () => {
    for (const cmd of ['manifest', 'scan', 'audit']) {
      const r = runAgent([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: quicksand-agent ${cmd}`);
      expect(r.stdout).toMatch(/Example|Exit codes/);
    }
    expect(runAgent(['--help']).stdout).toContain('Commands:');
  });
});

describe('odd entries in a root', () => {
  let odd: string;
  let oddManifest: string;

  beforeAll(() => {
    odd = path.join(dir, 'odd');
    mkdirSync(path.join(odd, 'usr/local/share'), { recursive: true });
    mkdirSync(path.join(odd, 'etc'), { recursive: true });
    execFileSync('mkfifo', [path.join(odd, 'usr/local/share/pipe')]);
    symlinkSync('/nonexistent/target', path.join(odd, 'usr/local/share/dangling'));
    symlinkSync('../../../etc', path.join(odd, 'usr/local/share/loop-out')); // never followed
    writeFileSync(Buffer.from(`${odd}/usr/local/share/caf\xe9-latin1`, 'latin1'), 'bytes\n');
    writeFileSync(path.join(odd, 'etc/secret'), 'root only\n', { mode: 0o600 });
    oddManifest = path.join(dir, 'odd.json');
    const r = runAgent(['manifest', '--root', odd, '--out', oddManifest], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
  });

  it('records a FIFO and links without opening or following them, and a non-UTF-8 name byte-exactly', () => {
    const manifest = JSON.parse(readFileSync(oddManifest, 'utf8'));
    const byPath = new Map<string, { type: string; target?: string; rawPath?: string }>(manifest.files.map((f: { path: string }) => [f.path, f]));
    expect(byPath.get('/usr/local/share/pipe')?.type).toBe('fifo');
    expect(byPath.get('/usr/local/share/dangling')).toMatchObject({ type: 'symlink', target: '/nonexistent/target' });
    expect(byPath.get('/usr/local/share/loop-out')).toMatchObject({ type: 'symlink', target: '../../../etc' });
    const latin1 = manifest.files.find((f: { rawPath?: string }) => f.rawPath !== undefined);
    expect(Buffer.from(latin1.rawPath, 'base64').toString('latin1')).toBe('/usr/local/share/caf\xe9-latin1');
  });

  it('scans the same root clean, with the non-UTF-8 file matched by its bytes', () => {
    const r = runAgent(['scan', '--root', odd, '--manifest', oddManifest, '--json'], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(parseReport(JSON.parse(r.stdout), 'scan').findings).toEqual([]);
  });

  it('finds a change to the non-UTF-8 file and names it by its bytes', () => {
    writeFileSync(Buffer.from(`${odd}/usr/local/share/caf\xe9-latin1`, 'latin1'), 'other bytes\n');
    const r = runAgent(['scan', '--root', odd, '--manifest', oddManifest, '--json']);
    expect(r.code).toBe(1);
    const [finding] = parseReport(JSON.parse(r.stdout), 'scan').findings;
    expect(finding).toMatchObject({ kind: 'file-modified', severity: 'low' });
    expect(Buffer.from(finding!.rawPath!, 'base64').toString('latin1')).toBe('/usr/local/share/caf\xe9-latin1');
    writeFileSync(Buffer.from(`${odd}/usr/local/share/caf\xe9-latin1`, 'latin1'), 'bytes\n');
  });

  it('reports a file it cannot read as a warning, not as drift', () => {
    // Root reads everything; the agent run unprivileged meets a real permission error.
    const r = runAgent(['scan', '--root', odd, '--manifest', oddManifest, '--json'], { asUser: 65534, timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    const report = parseReport(JSON.parse(r.stdout), 'scan');
    expect(report.findings).toEqual([]);
    expect(report.warnings).toContainEqual({ code: 'UNREADABLE', path: '/etc/secret', message: 'permission denied' });
    const human = runAgent(['scan', '--root', odd, '--manifest', oddManifest], { asUser: 65534 });
    expect(human.stdout).toMatch(/1 warning .*\n {2}UNREADABLE \/etc\/secret: permission denied/);
  });
});

describe('audit', () => {
  it('takes a baseline on the first run, then scans against it', () => {
    const state = path.join(dir, 'state');
    const first = runAgent(['audit', '--root', root, '--state', state]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('No baseline yet');
    expect(readFileSync(path.join(state, 'baseline.manifest.json.gz')).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    expect(runAgent(['audit', '--root', root, '--state', state]).code).toBe(0);
    writeFileSync(path.join(root, 'usr/local/bin/dropped'), '#!/bin/sh\n', { mode: 0o755 });
    const third = runAgent(['audit', '--root', root, '--state', state]);
    expect(third.code).toBe(1);
    expect(third.stdout).toMatch(/file-added +\/usr\/local\/bin\/dropped: new executable in a system path/);
  });
});
