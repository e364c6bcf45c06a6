// Config diffs end to end, every leg real: the built agent makes a manifest of a debootstrap copy,
// the tree's real config files are edited, `scan --send` carries the change over a loopback
// stream to a real server (its SQLite file, its ingest thread), and the findings API answers
// with unified diffs. A secret never leaves the agent: not in the manifest, the report, the
// agent's outbox, the server's database or the API's answer; /etc/shadow is never text, and a
// file over the cap has no text and says why.
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeAgentConfig } from '../agent/deliver/config.js';
import { enrollAgent } from '../agent/deliver/enroll.js';
import type { HostFinding } from '../shared/api.js';
import { parseManifest } from '../shared/manifest.js';
import type { FileRecord } from '../shared/manifest.js';
import { parseReport } from '../shared/report.js';
import type { Finding, Report } from '../shared/report.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { CACHE_DIR, copyTree, ensureMinbase } from './helpers/debian-root.js';
import { apiGet, runCliAsync } from './helpers/processes.js';

const SECRET = 'hunter2';
let work: string;
let tree: { dir: string; remove: () => void };
let server: RunningServer;
let manifestFile: string;
let manifestText: string;
let records: Map<string, FileRecord>;
let report: Report;
let findings: HostFinding[];
let apiText: string;
let state: string;

const etc = (p: string): string => path.join(tree.dir, 'etc', p);
const all = (fs: readonly Finding[]): Finding[] => fs.flatMap((f) => [f, ...all(f.changes ?? [])]);
const bigConf = (marker: string): string => `# ${marker}\n${'option = value that fills the file\n'.repeat(Math.ceil((65 * 1024) / 34))}`;

beforeAll(async () => {
  work = mkdtempSync(path.join(CACHE_DIR, 'config-diff-'));
  tree = copyTree(ensureMinbase());
  // The image: a real tree plus an application config holding a password and a file over the cap.
  writeFileSync(etc('app.conf'), `[db]\nhost = db.internal\nport = 5432\npassword=${SECRET}\n`);
  writeFileSync(etc('big.conf'), bigConf('image'));
  manifestFile = path.join(work, 'image.manifest.json.gz');
  const made = await runCliAsync('agent', ['manifest', '--root', tree.dir, '--name', 'minbase', '--image-version', '1', '--out', manifestFile, '-q']);
  expect(made.code, made.stderr).toBe(0);
  manifestText = gunzipSync(readFileSync(manifestFile)).toString('utf8');
  records = new Map(parseManifest(JSON.parse(manifestText), 'manifest').files.map((f) => [f.path, f]));

  // The host drifts: a real config edited, the secret file changed, a root account added.
  const defs = readFileSync(etc('login.defs'), 'utf8');
  writeFileSync(etc('login.defs'), defs.replace('PASS_MAX_DAYS\t99999', 'PASS_MAX_DAYS\t90'));
  writeFileSync(etc('app.conf'), `[db]\nhost = db2.internal\nport = 5432\npassword=${SECRET}-rotated\n`);
  appendFileSync(etc('shadow'), `backup:$6$salt$${SECRET}:20788:0:99999:7:::\n`);
  writeFileSync(etc('cron.d/backup'), `TOKEN=${SECRET}\n* * * * * root /usr/local/bin/backup\n`);
  writeFileSync(etc('big.conf'), bigConf('host'));

  server = await startServer({ db: path.join(work, 'server.db'), port: 0, host: '127.0.0.1' });
  state = path.join(work, 'agent-state');
  const config = await enrollAgent(server.url, await server.store.createEnrollSecret(new Date()), 'cfg-host');
  await writeAgentConfig(path.join(state, 'agent.json'), config);
  const sent = await runCliAsync('agent', ['scan', '--root', tree.dir, '--manifest', manifestFile, '--state', state, '--send', '--timeout', '30', '-q', '--json']);
  expect(sent.code, sent.stderr).toBe(1);
  expect(sent.stderr).toMatch(/delivered/);
  report = parseReport(JSON.parse(sent.stdout), 'scan output');
  const auditor = await server.store.createApiToken('auditor', new Date());
  const res = await fetch(`${server.url}/api/v1/hosts/${config.agentId}/findings`, { headers: { authorization: `Bearer ${auditor}` } });
  apiText = await res.text();
  findings = (JSON.parse(apiText) as { findings: HostFinding[] }).findings;
  expect((await apiGet<{ findings: unknown[] }>(`${server.url}/api/v1/hosts/${config.agentId}/findings`, auditor)).findings.length).toBe(findings.length);
}, 300_000);

afterAll(async () => {
  await server?.close();
  tree?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

const byPath = (p: string): HostFinding => {
  const f = findings.find((x) => x.path === p);
  if (f === undefined) throw new Error(`no finding for ${p}: ${findings.map((x) => x.path ?? x.name).join(', ')}`);
  return f;
};

describe('config text in the manifest', () => {
  it('carries the masked text of small files under /etc, never a secret file, and says why a large one has none', () => {
    expect(records.get('/etc/login.defs')!.text).toContain('PASS_MAX_DAYS\t99999');
    expect(records.get('/etc/app.conf')!.text).toBe('[db]\nhost = db.internal\nport = 5432\npassword=********\n');
    expect(records.get('/etc/shadow')).toMatchObject({ noText: 'secret' });
    expect(records.get('/etc/shadow')!.text).toBeUndefined();
    expect(records.get('/etc/big.conf')).toMatchObject({ noText: 'too-large' });
    expect(records.get('/etc/big.conf')!.size).toBeGreaterThan(65 * 1024);
    // Outside the config paths nothing is text.
    expect(records.get('/usr/bin/bash')!.text).toBeUndefined();
    expect(manifestText).not.toContain(SECRET);
  });
});

describe('config diffs through the findings API', () => {
  it('answers an edited real config with its unified diff hunk', () => {
    expect(byPath('/etc/login.defs').configDiff).toBe(
      [
        '--- a/etc/login.defs',
        '+++ b/etc/login.defs',
        '@@ -162,7 +162,7 @@',
        ' #\tPASS_MIN_DAYS\tMinimum number of days allowed between password changes.',
        ' #\tPASS_WARN_AGE\tNumber of days warning given before a password expires.',
        ' #',
        '-PASS_MAX_DAYS\t99999',
        '+PASS_MAX_DAYS\t90',
        ' PASS_MIN_DAYS\t0',
        ' PASS_WARN_AGE\t7',
        ' ',
        '',
      ].join('\n'),
    );
  });

  it('shows which setting holding a secret changed, with the value masked on both sides', () => {
    expect(byPath('/etc/app.conf').configDiff).toBe(
      ['--- a/etc/app.conf', '+++ b/etc/app.conf', '@@ -1,4 +1,4 @@', ' [db]', '-host = db.internal', '+host = db2.internal', ' port = 5432', ' password=********', ''].join('\n'),
    );
  });

  it('diffs a new config file against /dev/null, masked', () => {
    expect(byPath('/etc/cron.d/backup').configDiff).toBe('--- /dev/null\n+++ b/etc/cron.d/backup\n@@ -0,0 +1,2 @@\n+TOKEN=********\n+* * * * * root /usr/local/bin/backup\n');
  });

  it('never shows /etc/shadow as text, and says why a file over the cap has no diff', () => {
    const shadow = byPath('/etc/shadow');
    expect(shadow.configDiff).toBeUndefined();
    expect(shadow.configDiffNote).toMatch(/^no text: the image's copy holds secrets as a whole/);
    const big = byPath('/etc/big.conf');
    expect(big.configDiff).toBeUndefined();
    expect(big.configDiffNote).toMatch(/^no text: the image's copy is \d+ bytes, over the policy's cap of 65536 bytes per file$/);
  });

  it('lets the secret appear nowhere: report, agent outbox, server database, API answer', () => {
    expect(all(report.findings).find((f) => f.path === '/etc/shadow')!.text).toMatchObject({ omitted: 'secret' });
    expect(JSON.stringify(report)).not.toContain(SECRET);
    expect(apiText).not.toContain(SECRET);
    for (const dir of [state, work]) {
      for (const name of readdirSync(dir).filter((n) => /\.db(-wal|-shm)?$/.test(n))) {
        expect(readFileSync(path.join(dir, name)).includes(SECRET), `${name} holds the secret`).toBe(false);
      }
    }
  });
});
