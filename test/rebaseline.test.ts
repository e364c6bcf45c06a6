// Re-baselining a host end to end, every part real: the agent daemon (a child process) on a copy
// of a debootstrap tree, a real dpkg install and hand edits in it, the loopback stream, the
// server's SQLite file and HTTP API. The analyst's re-baseline becomes a manifest version over
// the image's; the agent uploads its observation when asked, fetches the version when told, and
// scans against it from then on, also after a restart.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeAgentConfig } from '../agent/deliver/config.js';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { SERVER_BASELINE_FILE } from '../agent/deliver/server-baseline.js';
import type { AuditEntry, HostDetail, HostFinding } from '../shared/api.js';
import type { BaselineSummary } from '../shared/baseline.js';
import type { Manifest } from '../shared/manifest.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { copyTree, ensureMinbase, withPackagesPath } from './helpers/debian-root.js';
import { killAll, runCliAsync, startChild, waitFor } from './helpers/processes.js';
import type { Child } from './helpers/processes.js';
import { callApi } from './helpers/api.js';

let tree: { dir: string; remove: () => void };
let work: string;
let server: RunningServer;
let analyst: string;
let auditor: string;
let hostId: string;
let state: string;
let imageFile: string;
let agent: Child | undefined;

const call = (method: string, route: string, token: string, body?: unknown): ReturnType<typeof callApi> => callApi(server.url, method, route, token, body);
const host = async (): Promise<HostDetail> => (await call('GET', `/api/v1/hosts/${hostId}`, auditor)).json as HostDetail;
const openFindings = async (): Promise<HostFinding[]> => (await call('GET', `/api/v1/hosts/${hostId}/findings`, auditor)).json.findings as HostFinding[];

const startAgent = (): Child =>
  startChild('agent', ['run', '--root', tree.dir, '--manifest', imageFile, '--state', state, '--no-watch', '--schedule', '0 0 1 1 *', '--reconnect-max', '1']);

/** Asks the connected agent for a full scan and waits until its report is stored. */
async function scanNow(): Promise<HostDetail> {
  const before = (await host()).reports;
  await waitFor('the agent to be connected', async () => (await host()).connected);
  expect((await call('POST', `/api/v1/hosts/${hostId}/scan-now`, analyst)).status).toBe(202);
  return waitFor('the commanded report', async () => {
    const h = await host();
    return h.reports > before && h;
  }, 60_000);
}

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

beforeAll(async () => {
  tree = copyTree(ensureMinbase());
  work = mkdtempSync(path.join(tmpdir(), 'quicksand-rebaseline-'));
  state = path.join(work, 'agent-state');
  imageFile = path.join(work, 'image.json');
  const built = await runCliAsync('agent', ['manifest', '--root', tree.dir, '--name', 'debian-minbase', '--image-version', '1', '--out', imageFile, '--state', state, '-q']);
  expect(built.code, built.stderr).toBe(0);
  server = await startServer({ db: path.join(work, 'server.db'), port: 0, host: '127.0.0.1' });
  analyst = server.store.createApiToken('analyst', new Date());
  auditor = server.store.createApiToken('auditor', new Date());
  // The image builder uploaded the image's manifest: the versions of its hosts extend it.
  expect((await call('POST', '/api/v1/images', analyst, JSON.parse(readFileSync(imageFile, 'utf8')))).status).toBe(201);
  const config = await enrollAgent(server.url, server.store.createEnrollSecret(new Date()), 'rebaselined-host');
  hostId = config.agentId;
  await writeAgentConfig(path.join(state, 'agent.json'), config);
});
afterAll(async () => {
  killAll();
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
  tree?.remove();
});

describe('re-baselining a host', () => {
  it('drifts: a dpkg install and hand edits make the host a pet', async () => {
    agent = startAgent();
    await waitFor('the start-up report', async () => (await host()).reports >= 1, 60_000);
    expect((await host()).status).toBe('cattle');

    const archives = path.join(withPackagesPath(), 'var/cache/apt/archives');
    const debs = [/^libbsd0_.*\.deb$/, /^netcat-openbsd_.*\.deb$/].flatMap((re) => readdirSync(archives).filter((n) => re.test(n)));
    for (const n of debs) copyFileSync(path.join(archives, n), path.join(tree.dir, 'var/cache/apt/archives', n));
    execFileSync('chroot', [tree.dir, 'dpkg', '-i', ...debs.map((n) => `/var/cache/apt/archives/${n}`)], {
      stdio: 'ignore',
      timeout: 120_000,
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive', LANG: 'C' },
    });
    writeFileSync(path.join(tree.dir, 'usr/local/bin/hand-made'), '#!/bin/sh\necho made by hand\n', { mode: 0o755 });
    writeFileSync(path.join(tree.dir, 'etc/issue'), 'Welcome to a pet\n');
    chmodSync(path.join(tree.dir, 'etc/motd'), 0o600);
    unlinkSync(path.join(tree.dir, 'usr/bin/rgrep'));

    const h = await scanNow();
    expect(h.status).toBe('pet');
    const kinds = new Set((await openFindings()).map((f) => `${f.kind} ${f.name ?? f.path}`));
    for (const k of ['package-added netcat-openbsd', 'file-added /usr/local/bin/hand-made', 'file-modified /etc/issue', 'file-metadata /etc/motd', 'file-removed /usr/bin/rgrep']) expect(kinds).toContain(k);
  });

  it('makes the current observation a manifest version over the image, which the agent fetches and scans against: clean, cattle', async () => {
    const reportsBefore = (await host()).reports;
    const res = await call('POST', `/api/v1/hosts/${hostId}/rebaseline`, analyst, { reason: 'the netcat install is the new standard', ticket: 'CHG-77' });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.json).toMatchObject({ version: 1, state: 'awaiting-observation', agentAsked: true, status: 'cattle' });

    const ready = await waitFor('the version to be derived', async () => {
      const { json } = await call('GET', `/api/v1/hosts/${hostId}/baselines/1`, auditor);
      return json.state === 'ready' && (json as BaselineSummary & { manifest: Manifest });
    }, 60_000);
    expect(ready).toMatchObject({ image: { name: 'debian-minbase', version: '1' }, parent: { source: 'image', baseline: null }, notes: [] });
    const image = JSON.parse(readFileSync(imageFile, 'utf8')) as Manifest;
    const m = ready.manifest;
    expect(m.image).toMatchObject({ name: 'debian-minbase', version: '1', source: 'root' });
    expect(m.policy).toEqual(image.policy);
    const record = (p: string) => m.files.find((f) => f.path === p);
    expect(record('/usr/local/bin/hand-made')).toMatchObject({ type: 'file', mode: '0755', uid: 0, gid: 0, sha256: sha256(path.join(tree.dir, 'usr/local/bin/hand-made')) });
    expect(record('/etc/issue')!.sha256).toBe(sha256(path.join(tree.dir, 'etc/issue')));
    expect(record('/etc/motd')!.mode).toBe('0600');
    expect(record('/usr/bin/rgrep')).toBeUndefined();
    expect(record('/usr/bin/nc.openbsd')).toMatchObject({ owner: { ecosystem: 'dpkg', name: 'netcat-openbsd' } });
    expect(m.packages.some((p) => p.name === 'netcat-openbsd')).toBe(true);
    expect(m.packages.length).toBe(image.packages.length + 2);
    // Auditors read the versions; the list carries no manifest bodies.
    const { json: listed } = await call('GET', `/api/v1/hosts/${hostId}/baselines`, auditor);
    expect(listed.baselines).toMatchObject([{ version: 1, state: 'ready', packages: m.packages.length, files: m.files.length }]);
    expect(listed.baselines[0].manifest).toBeUndefined();

    // The agent was told to fetch it: its next full scan (at once, over the new version) is clean.
    const clean = await waitFor('a clean report against the new version', async () => {
      const h = await host();
      return h.reports > reportsBefore && h.baselineVersion === 1 && h.openFindings === 0 && (await openFindings()).length === 0 && h;
    }, 60_000);
    expect(clean.status).toBe('cattle');
    expect(agent!.output()).toContain('scanning against baseline version 1 from now on');
    expect(existsSync(path.join(state, SERVER_BASELINE_FILE))).toBe(true);
    const again = await scanNow();
    expect(again.openFindings).toBe(0);
    expect(await openFindings()).toEqual([]);

    const { json: audit } = await call('GET', `/api/v1/audit?target=host:${hostId}/baseline:1`, auditor);
    expect((audit.entries as AuditEntry[]).map((e) => [e.action, e.actor, e.role])).toEqual([['baseline-derived', hostId, 'agent']]);
    const { json: acts } = await call('GET', '/api/v1/audit?action=rebaseline', auditor);
    expect(acts.entries[0]).toMatchObject({ role: 'analyst', target: `host:${hostId}`, reason: 'the netcat install is the new standard', detail: { version: 1, ticket: 'CHG-77' } });
  });

  it('reports a further change as drift again, and keeps scanning against the version after a restart', async () => {
    writeFileSync(path.join(tree.dir, 'usr/local/bin/after-the-fact'), '#!/bin/sh\n', { mode: 0o755 });
    const h = await scanNow();
    expect(h.status).toBe('pet');
    expect((await openFindings()).map((f) => f.path)).toEqual(['/usr/local/bin/after-the-fact']);

    expect(await agent!.kill('SIGTERM')).toBe(0);
    const before = (await host()).reports;
    agent = startAgent();
    await waitFor('the restarted agent\'s start-up report', async () => (await host()).reports > before, 60_000);
    expect(agent.output()).toMatch(/running: .* against baseline version 1/);
    expect((await openFindings()).map((f) => f.path)).toEqual(['/usr/local/bin/after-the-fact']);
    expect((await host()).baselineVersion).toBe(1);
    expect(await agent.kill('SIGTERM')).toBe(0);
  });

  it('asks an agent that was away when it connects, and chains the next version onto the last', async () => {
    const res = await call('POST', `/api/v1/hosts/${hostId}/rebaseline`, analyst, { reason: 'accepted as well' });
    expect(res.json).toMatchObject({ version: 2, state: 'awaiting-observation', agentAsked: false });
    const before = (await host()).reports;
    agent = startAgent();
    const ready = await waitFor('version 2 to be derived', async () => {
      const { json } = await call('GET', `/api/v1/hosts/${hostId}/baselines/2`, auditor);
      return json.state === 'ready' && (json as BaselineSummary & { manifest: Manifest });
    }, 60_000);
    expect(ready.parent).toEqual({ source: 'baseline', baseline: 1 });
    expect(ready.manifest.files.some((f) => f.path === '/usr/local/bin/after-the-fact')).toBe(true);
    await waitFor('a clean report against version 2', async () => {
      const h = await host();
      return h.reports > before && h.baselineVersion === 2 && (await openFindings()).length === 0;
    }, 60_000);
    expect((await host()).status).toBe('cattle');
    expect(await agent.kill('SIGTERM')).toBe(0);
  });

  it('refuses the agent routes without the agent\'s own token', async () => {
    expect((await fetch(`${server.url}/api/v1/agent/baseline`, { headers: { authorization: `Bearer ${analyst}` } })).status).toBe(401);
    const upload = await fetch(`${server.url}/api/v1/agent/baselines/1/observation`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(upload.status).toBe(401);
  });
});
