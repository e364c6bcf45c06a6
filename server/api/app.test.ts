// The API through app.request(): a real SQLite store in a temporary file, no socket.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { HostDetail, HostFinding, HostSummary } from '../../shared/api.js';
import { REPORT_SCHEMA, summarize } from '../../shared/report.js';
import type { Finding } from '../../shared/report.js';
import type { ReportFrame } from '../../shared/protocol.js';
import { createApp } from './app.js';
import { createMetrics } from '../metrics.js';
import { createSqliteStore } from '../store/sqlite-store.js';
import type { Store } from '../store/types.js';

let dir: string;
let store: Store;
let now: Date;
let app: ReturnType<typeof createApp>;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'quicksand-api-'));
  store = createSqliteStore(path.join(dir, 'server.db'), { staleAfterMs: 60 * 60 * 1000 });
  now = new Date('2026-11-29T12:00:00Z');
  app = createApp({ store, clock: () => now, metrics: createMetrics() });
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const h = (n: number): string => n.toString(16).padStart(64, '0');

function frame(agentId: string, seq: number, kind: 'full' | 'event', findings: Finding[]): ReportFrame {
  return {
    type: 'report',
    agentId,
    seq,
    prevHash: seq === 1 ? null : h(seq - 1),
    hash: h(seq),
    kind,
    report: {
      schema: REPORT_SCHEMA,
      image: { name: 'web', version: '42' },
      host: { hostname: `host-${agentId.slice(0, 4)}`, root: '/' },
      scannedAt: now.toISOString(),
      summary: summarize(findings),
      stats: { files: 1, packages: 1, bytesHashed: 0, durationMs: 1 },
      findings,
      warnings: [],
    },
  };
}

function ingest(agentId: string, seq: number, kind: 'full' | 'event', findings: Finding[]): void {
  store.ingestBatch([{ type: 'report', agentId, frame: frame(agentId, seq, kind, findings), receivedAt: now }]);
}

async function get<T>(url: string, token: string): Promise<{ status: number; body: T }> {
  const res = await app.request(url, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as T };
}

const curl: Finding = { kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: 'curl', after: '7.88' };
const hostname: Finding = { kind: 'file-modified', severity: 'info', path: '/etc/hostname', before: h(1), after: h(2) };

describe('API', () => {
  it('takes an image manifest from an analyst, refuses an invalid one naming the path, and lists it', async () => {
    const analyst = store.createApiToken('analyst', now);
    const auditor = store.createApiToken('auditor', now);
    const manifest = {
      schema: 'quicksand.manifest/v1',
      image: { name: 'web', version: '43', createdAt: now.toISOString(), source: 'root' },
      packages: [{ ecosystem: 'dpkg', name: 'bash', version: '5.2' }],
      files: [{ path: '/usr/bin/bash', type: 'file', mode: '0755', uid: 0, gid: 0 }],
    };
    const post = (token: string, body: unknown) =>
      app.request('/api/v1/images', { method: 'POST', body: JSON.stringify(body), headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
    expect((await post(auditor, manifest)).status).toBe(403);
    expect((await post(analyst, manifest)).status).toBe(201);
    expect((await post(analyst, manifest)).status).toBe(200);
    const bad = await post(analyst, { ...manifest, files: [{ ...manifest.files[0], mode: '755' }] });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toContain('files[0].mode');
    const images = await get<{ images: unknown[] }>('/api/v1/images', auditor);
    expect(images.body.images).toEqual([expect.objectContaining({ name: 'web', version: '43', source: 'uploaded', packages: 1, files: 1, hosts: 0 })]);
  });

  it('refuses every /api/v1 route but enrolment without a valid API token', async () => {
    expect((await app.request('/api/v1/hosts')).status).toBe(401);
    expect((await get('/api/v1/hosts', 'qst.0000000000000000.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')).status).toBe(401);
    expect((await app.request('/healthz')).status).toBe(200);
    const secret = store.createEnrollSecret(now);
    const res = await app.request('/api/v1/enroll', { method: 'POST', body: JSON.stringify({ secret, hostname: 'a' }), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(201);
  });

  it('answers a bad enrolment secret with 403 and a bad body with 400 naming the field', async () => {
    const bad = await app.request('/api/v1/enroll', { method: 'POST', body: JSON.stringify({ secret: 'nope', hostname: 'a' }) });
    expect(bad.status).toBe(403);
    const invalid = await app.request('/api/v1/enroll', { method: 'POST', body: JSON.stringify({ secret: 'x' }) });
    expect(invalid.status).toBe(400);
    expect(((await invalid.json()) as { error: { message: string } }).error.message).toContain('hostname');
  });

  it('lists pets and cattle, and tells a host that stopped reporting is stale', async () => {
    const token = store.createApiToken('auditor', now);
    const secret = store.createEnrollSecret(now);
    const pet = store.enrollAgent(secret, 'pet', now)!;
    const cattle = store.enrollAgent(secret, 'cattle', now)!;
    const silent = store.enrollAgent(secret, 'silent', now)!;
    ingest(pet.agentId, 1, 'full', [curl, hostname]);
    ingest(cattle.agentId, 1, 'full', [hostname]);

    const pets = await get<{ hosts: HostSummary[] }>('/api/v1/hosts?status=pet', token);
    expect(pets.body.hosts).toEqual([
      expect.objectContaining({ id: pet.agentId, status: 'pet', image: { name: 'web', version: '42' }, openFindings: 1, lastSeen: now.toISOString(), petSince: now.toISOString() }),
    ]);
    const all = await get<{ hosts: HostSummary[] }>('/api/v1/hosts', token);
    expect(Object.fromEntries(all.body.hosts.map((x) => [x.id, x.status]))).toEqual({ [pet.agentId]: 'pet', [cattle.agentId]: 'cattle', [silent.agentId]: 'stale' });

    now = new Date(now.getTime() + 2 * 60 * 60 * 1000);
    const later = await get<{ hosts: HostSummary[] }>('/api/v1/hosts?status=stale', token);
    expect(later.body.hosts).toHaveLength(3);
    expect((await get('/api/v1/hosts?status=goat', token)).status).toBe(400);
  });

  it('keeps a finding open across reports and resolves it when a full report no longer has it', async () => {
    const token = store.createApiToken('analyst', now);
    const a = store.enrollAgent(store.createEnrollSecret(now), 'a', now)!;
    ingest(a.agentId, 1, 'full', [curl]);
    const firstSeen = now.toISOString();
    now = new Date(now.getTime() + 60_000);
    ingest(a.agentId, 2, 'event', []); // an event report says nothing about what it does not name
    ingest(a.agentId, 3, 'full', [curl]);
    let findings = await get<{ findings: HostFinding[] }>(`/api/v1/hosts/${a.agentId}/findings`, token);
    expect(findings.body.findings).toEqual([expect.objectContaining({ kind: 'package-added', name: 'curl', firstSeen, lastSeen: now.toISOString(), resolvedAt: null })]);

    now = new Date(now.getTime() + 60_000);
    ingest(a.agentId, 4, 'full', []);
    findings = await get<{ findings: HostFinding[] }>(`/api/v1/hosts/${a.agentId}/findings`, token);
    expect(findings.body.findings).toEqual([]);
    const resolved = await get<{ findings: HostFinding[] }>(`/api/v1/hosts/${a.agentId}/findings?state=resolved`, token);
    expect(resolved.body.findings).toEqual([expect.objectContaining({ name: 'curl', resolvedAt: now.toISOString() })]);
    const host = await get<HostDetail>(`/api/v1/hosts/${a.agentId}`, token);
    expect(host.body).toMatchObject({ status: 'cattle', petSince: null, driftScore: 0, reports: 4, lastSeq: 4 });
  });

  it('lets only admins revoke agents and gives 404 for unknown hosts', async () => {
    const auditor = store.createApiToken('auditor', now);
    const admin = store.createApiToken('admin', now);
    const a = store.enrollAgent(store.createEnrollSecret(now), 'a', now)!;
    const asAuditor = await app.request(`/api/v1/agents/${a.agentId}`, { method: 'DELETE', headers: { authorization: `Bearer ${auditor}` } });
    expect(asAuditor.status).toBe(403);
    const asAdmin = await app.request(`/api/v1/agents/${a.agentId}`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } });
    expect(asAdmin.status).toBe(200);
    expect(store.authenticateAgent(a.token)).toEqual({ ok: false, reason: 'revoked' });
    expect((await get('/api/v1/hosts/nope', admin)).status).toBe(404);
  });

  it('lists announced images with their host counts and serves Prometheus metrics', async () => {
    const token = store.createApiToken('auditor', now);
    const a = store.enrollAgent(store.createEnrollSecret(now), 'a', now)!;
    ingest(a.agentId, 1, 'full', []);
    const images = await get<{ images: unknown[] }>('/api/v1/images', token);
    expect(images.body.images).toEqual([{ name: 'web', version: '42', source: 'announced', firstSeen: now.toISOString(), lastSeen: now.toISOString(), hosts: 1, packages: null, files: null }]);
    const metrics = await (await app.request('/metrics')).text();
    expect(metrics).toContain('quicksand_agents_connected 0');
    expect(metrics).toContain('quicksand_hosts{status="cattle"} 1');
  });
});

describe('a host\'s baseline versions over the agent routes', () => {
  const manifestOf = (version: string, files: Array<{ path: string }>) => ({
    schema: 'quicksand.manifest/v1',
    image: { name: 'web', version, createdAt: '2026-01-01T00:00:00.000Z', source: 'root' },
    packages: [],
    files: files.map((f) => ({ ...f, type: 'file', mode: '0755', uid: 0, gid: 0, size: 3, sha256: h(7) })),
  });
  const hello = (agentId: string, image: { name: string; version: string }) =>
    store.ingestBatch([{ type: 'hello', agentId, frame: { type: 'hello', protocol: 1, agentId, host: { hostname: 'h' }, image, lastAckedSeq: 0, outboxDepth: 0 }, receivedAt: now }]);
  const asAgent = (token: string, url: string, body?: unknown) =>
    app.request(url, { method: body === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });

  it('are written only by the host\'s own agent and offered only while the host runs the image they extend', async () => {
    const analyst = store.createApiToken('analyst', now);
    const secret = store.createEnrollSecret(now);
    const a = store.enrollAgent(secret, 'a', now)!;
    const other = store.enrollAgent(secret, 'other', now)!;
    hello(a.agentId, { name: 'web', version: '42' });
    const tool: Finding = { kind: 'file-added', severity: 'high', path: '/usr/bin/tool' };
    ingest(a.agentId, 1, 'full', [tool]);
    const rebased = await app.request(`/api/v1/hosts/${a.agentId}/rebaseline`, { method: 'POST', body: JSON.stringify({ reason: 'new reference' }), headers: { authorization: `Bearer ${analyst}`, 'content-type': 'application/json' } });
    expect(rebased.status).toBe(201);

    const upload = { baseline: null, expected: manifestOf('42', []), observation: manifestOf('42', [{ path: '/usr/bin/tool' }]) };
    // Another host's agent cannot answer for this host's version: it has no version 1 of its own.
    expect((await asAgent(other.token, '/api/v1/agent/baselines/1/observation', upload)).status).toBe(404);
    const received = await asAgent(a.token, '/api/v1/agent/baselines/1/observation', upload);
    expect(received.status).toBe(201);
    // No manifest of web 42 was uploaded: the version stands on the agent's word, and says so.
    expect(await received.json()).toMatchObject({ parent: { source: 'agent' }, notes: [expect.stringMatching(/no manifest of image web 42 was uploaded/)] });
    expect((await asAgent(other.token, '/api/v1/agent/baseline')).status).toBe(404);
    expect(store.baselines.commandsFor(a.agentId, undefined, { name: 'web', version: '42' })).toEqual([{ command: 'fetch-baseline', baseline: 1 }]);
    expect(store.baselines.commandsFor(a.agentId, 1, { name: 'web', version: '42' })).toEqual([]);

    // Rebuilt from web 43: version 1 extends web 42, so it is neither offered nor handed out.
    hello(a.agentId, { name: 'web', version: '43' });
    expect(store.baselines.commandsFor(a.agentId, undefined, { name: 'web', version: '43' })).toEqual([]);
    expect((await asAgent(a.token, '/api/v1/agent/baseline')).status).toBe(404);
    expect(store.getHost(a.agentId, now)!.baselineVersion).toBeNull();

    hello(a.agentId, { name: 'web', version: '42' });
    const fetched = await asAgent(a.token, '/api/v1/agent/baseline');
    expect(fetched.status).toBe(200);
    expect(((await fetched.json()) as { version: number; host: string })).toMatchObject({ version: 1, host: a.agentId });
  });
});
