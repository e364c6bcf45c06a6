// The API through app.request() on every store backend (a real SQLite file, …), no socket.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ContainerSummary, HostDetail, HostFinding, HostSummary } from '../../shared/api.js';
import type { ReportFrame } from '../../shared/protocol.js';
import type { ContainerReport } from '../../shared/report.js';
import { summarize } from '../../shared/summary.js';
import type { Finding } from '../../shared/report.js';
import { createApp } from './app.js';
import { createMetrics } from '../metrics.js';
import type { Store } from '../store/types.js';
import { STORE_BACKENDS, fakeHash, reportFrame } from '../../test/helpers/store-backends.js';
import type { FreshStore } from '../../test/helpers/store-backends.js';

describe.each(STORE_BACKENDS)('on the $name store', (backend) => {
  let db: FreshStore;
  let store: Store;
  let now: Date;
  let app: ReturnType<typeof createApp>;

  beforeEach(async () => {
    db = await backend.fresh({ staleAfterMs: 60 * 60 * 1000 });
    store = db.store;
    now = new Date('2026-11-29T12:00:00Z');
    app = createApp({ store, clock: () => now, metrics: createMetrics() });
  });
  afterEach(async () => {
    await db.drop();
  });

  async function ingest(agentId: string, seq: number, kind: 'full' | 'event', findings: Finding[]): Promise<void> {
    await store.ingestBatch([{ type: 'report', agentId, frame: reportFrame(agentId, seq, kind, findings, now), receivedAt: now }]);
  }

  async function get<T>(url: string, token: string): Promise<{ status: number; body: T }> {
    const res = await app.request(url, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: (await res.json()) as T };
  }

  const curl: Finding = { kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: 'curl', after: '7.88' };
  const hostname: Finding = { kind: 'file-modified', severity: 'info', path: '/etc/hostname', before: fakeHash(1), after: fakeHash(2) };

  describe('API', () => {
    it('takes an image manifest from an analyst, refuses an invalid one naming the path, and lists it', async () => {
      const analyst = await store.createApiToken('analyst', now);
      const auditor = await store.createApiToken('auditor', now);
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
      const secret = await store.createEnrollSecret(now);
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

    it('answers "which containers of image X drifted, on which hosts" whatever spelling each runtime keeps of X', async () => {
      const token = await store.createApiToken('auditor', now);
      const secret = await store.createEnrollSecret(now);
      const a = (await store.enrollAgent(secret, 'node-a', now))!;
      const b = (await store.enrollAgent(secret, 'node-b', now))!;
      const tool: Finding = { kind: 'file-added', severity: 'critical', path: '/usr/local/bin/tool', after: fakeHash(3) };
      const container = (runtime: 'docker' | 'containerd' | 'podman', id: string, ref: string, findings: Finding[]): ContainerReport => ({
        runtime, id, name: id, image: { ref, id: `sha256:${'ab12'.repeat(16)}` }, state: 'stopped', summary: summarize(findings), findings, warnings: [],
      });
      const withContainers = (agentId: string, containers: ContainerReport[]): ReportFrame => {
        const frame = reportFrame(agentId, 1, 'full', [], now);
        return { ...frame, report: { ...frame.report, containers } };
      };
      await store.ingestBatch([
        { type: 'report', agentId: a.agentId, receivedAt: now, frame: withContainers(a.agentId, [container('docker', 'web-1', 'debian:qs', [tool]), container('docker', 'web-2', 'debian:qs', [])]) },
        { type: 'report', agentId: b.agentId, receivedAt: now, frame: withContainers(b.agentId, [container('containerd', 'pod-1', 'docker.io/library/debian:qs', [tool]), container('podman', 'other', 'quay.io/debian:qs', [tool])]) },
      ]);
      const ask = async (q: string): Promise<string[]> =>
        (await get<{ containers: ContainerSummary[] }>(`/api/v1/containers?${q}`, token)).body.containers.map((c) => `${c.host.hostname} ${c.containerId} ${c.status}`);
      // Hosts come in hostname order, and these hostnames hold random ids: compare as sets.
      expect((await ask('image=debian:qs&status=pet')).sort()).toEqual(['host-' + a.agentId.slice(0, 4) + ' web-1 pet', 'host-' + b.agentId.slice(0, 4) + ' pod-1 pet'].sort());
      expect(await ask('image=docker.io/library/debian:qs&drifted=true')).toEqual(await ask('image=debian:qs&drifted=true'));
      expect(await ask('image=debian:qs&drifted=false')).toEqual(['host-' + a.agentId.slice(0, 4) + ' web-2 cattle']);
      expect(await ask('image=quay.io/debian:qs')).toEqual(['host-' + b.agentId.slice(0, 4) + ' other pet']);
      // By image id, whole or by its first 12 hex digits: every container of it.
      expect((await ask(`image=${'ab12'.repeat(3)}`)).length).toBe(4);
      expect(await ask('image=debian:other')).toEqual([]);
    });

    it('lists pets and cattle, tells a host that stopped reporting is stale, and one that never reported is enrolled', async () => {
      const token = await store.createApiToken('auditor', now);
      const secret = await store.createEnrollSecret(now);
      const pet = (await store.enrollAgent(secret, 'pet', now))!;
      const cattle = (await store.enrollAgent(secret, 'cattle', now))!;
      const silent = (await store.enrollAgent(secret, 'silent', now))!;
      await ingest(pet.agentId, 1, 'full', [curl, hostname]);
      await ingest(cattle.agentId, 1, 'full', [hostname]);

      const pets = await get<{ hosts: HostSummary[] }>('/api/v1/hosts?status=pet', token);
      expect(pets.body.hosts).toEqual([
        expect.objectContaining({ id: pet.agentId, status: 'pet', image: { name: 'web', version: '42' }, openFindings: 1, lastSeen: now.toISOString(), petSince: now.toISOString() }),
      ]);
      const all = await get<{ hosts: HostSummary[] }>('/api/v1/hosts', token);
      expect(Object.fromEntries(all.body.hosts.map((x) => [x.id, x.status]))).toEqual({ [pet.agentId]: 'pet', [cattle.agentId]: 'cattle', [silent.agentId]: 'enrolled' });

      now = new Date(now.getTime() + 2 * 60 * 60 * 1000);
      const later = await get<{ hosts: HostSummary[] }>('/api/v1/hosts?status=stale', token);
      expect(later.body.hosts.map((h) => h.id).sort()).toEqual([pet.agentId, cattle.agentId].sort());
      const never = await get<{ hosts: HostSummary[] }>('/api/v1/hosts?status=enrolled', token);
      expect(never.body.hosts.map((h) => h.id)).toEqual([silent.agentId]);
      expect((await get('/api/v1/hosts?status=goat', token)).status).toBe(400);
    });

    it('keeps a finding open across reports and resolves it when a full report no longer has it', async () => {
      const token = await store.createApiToken('analyst', now);
      const a = (await store.enrollAgent(await store.createEnrollSecret(now), 'a', now))!;
      await ingest(a.agentId, 1, 'full', [curl]);
      const firstSeen = now.toISOString();
      now = new Date(now.getTime() + 60_000);
      await ingest(a.agentId, 2, 'event', []); // an event report says nothing about what it does not name
      await ingest(a.agentId, 3, 'full', [curl]);
      let findings = await get<{ findings: HostFinding[] }>(`/api/v1/hosts/${a.agentId}/findings`, token);
      expect(findings.body.findings).toEqual([expect.objectContaining({ kind: 'package-added', name: 'curl', firstSeen, lastSeen: now.toISOString(), resolvedAt: null })]);

      now = new Date(now.getTime() + 60_000);
      await ingest(a.agentId, 4, 'full', []);
      findings = await get<{ findings: HostFinding[] }>(`/api/v1/hosts/${a.agentId}/findings`, token);
      expect(findings.body.findings).toEqual([]);
      const resolved = await get<{ findings: HostFinding[] }>(`/api/v1/hosts/${a.agentId}/findings?state=resolved`, token);
      expect(resolved.body.findings).toEqual([expect.objectContaining({ name: 'curl', resolvedAt: now.toISOString() })]);
      const host = await get<HostDetail>(`/api/v1/hosts/${a.agentId}`, token);
      expect(host.body).toMatchObject({ status: 'cattle', petSince: null, driftScore: 0, reports: 4, lastSeq: 4 });
    });

    it('gives each finding the ATT&CK technique it indicates and the likely actor of a hand edit, or null', async () => {
      const token = await store.createApiToken('analyst', now);
      const a = (await store.enrollAgent(await store.createEnrollSecret(now), 'a', now))!;
      const actor = { user: 'alice', evidence: [{ source: '/var/log/sudo.log', at: '2026-12-01T14:01:58.000Z', text: 'at 14:01:58 alice ran `sudo vim /etc/cron.d/sync`' }] };
      const cron: Finding = { kind: 'file-added', severity: 'high', path: '/etc/cron.d/sync', attack: { id: 'T1053.003', name: 'Scheduled Task/Job: Cron' }, actor };
      await ingest(a.agentId, 1, 'full', [curl, cron]);
      const findings = await get<{ findings: HostFinding[] }>(`/api/v1/hosts/${a.agentId}/findings`, token);
      expect(findings.body.findings.map((f) => [f.path ?? f.name, f.attack, f.actor])).toEqual([
        ['curl', null, null],
        ['/etc/cron.d/sync', { id: 'T1053.003', name: 'Scheduled Task/Job: Cron' }, actor],
      ]);
    });

    it('lets only admins revoke agents and gives 404 for unknown hosts', async () => {
      const auditor = await store.createApiToken('auditor', now);
      const admin = await store.createApiToken('admin', now);
      const a = (await store.enrollAgent(await store.createEnrollSecret(now), 'a', now))!;
      const asAuditor = await app.request(`/api/v1/agents/${a.agentId}`, { method: 'DELETE', headers: { authorization: `Bearer ${auditor}` } });
      expect(asAuditor.status).toBe(403);
      const asAdmin = await app.request(`/api/v1/agents/${a.agentId}`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } });
      expect(asAdmin.status).toBe(200);
      expect(await store.authenticateAgent(a.token)).toEqual({ ok: false, reason: 'revoked' });
      expect((await get('/api/v1/hosts/nope', admin)).status).toBe(404);
    });

    it('lists announced images with their host counts and serves Prometheus metrics', async () => {
      const token = await store.createApiToken('auditor', now);
      const a = (await store.enrollAgent(await store.createEnrollSecret(now), 'a', now))!;
      await ingest(a.agentId, 1, 'full', []);
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
      files: files.map((f) => ({ ...f, type: 'file', mode: '0755', uid: 0, gid: 0, size: 3, sha256: fakeHash(7) })),
    });
    const hello = (agentId: string, image: { name: string; version: string }) =>
      store.ingestBatch([{ type: 'hello', agentId, frame: { type: 'hello', protocol: 1, agentId, host: { hostname: 'h' }, image, lastAckedSeq: 0, outboxDepth: 0 }, receivedAt: now }]);
    const asAgent = (token: string, url: string, body?: unknown) =>
      app.request(url, { method: body === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });

    it('are written only by the host\'s own agent and offered only while the host runs the image they extend', async () => {
      const analyst = await store.createApiToken('analyst', now);
      const secret = await store.createEnrollSecret(now);
      const a = (await store.enrollAgent(secret, 'a', now))!;
      const other = (await store.enrollAgent(secret, 'other', now))!;
      await hello(a.agentId, { name: 'web', version: '42' });
      const tool: Finding = { kind: 'file-added', severity: 'high', path: '/usr/bin/tool' };
      await ingest(a.agentId, 1, 'full', [tool]);
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
      expect(await store.baselines.commandsFor(a.agentId, undefined, { name: 'web', version: '42' })).toEqual([{ command: 'fetch-baseline', baseline: 1 }]);
      expect(await store.baselines.commandsFor(a.agentId, 1, { name: 'web', version: '42' })).toEqual([]);

      // Rebuilt from web 43: version 1 extends web 42, so it is neither offered nor handed out.
      await hello(a.agentId, { name: 'web', version: '43' });
      expect(await store.baselines.commandsFor(a.agentId, undefined, { name: 'web', version: '43' })).toEqual([]);
      expect((await asAgent(a.token, '/api/v1/agent/baseline')).status).toBe(404);
      expect((await store.getHost(a.agentId, now))!.baselineVersion).toBeNull();

      await hello(a.agentId, { name: 'web', version: '42' });
      const fetched = await asAgent(a.token, '/api/v1/agent/baseline');
      expect(fetched.status).toBe(200);
      expect(((await fetched.json()) as { version: number; host: string })).toMatchObject({ version: 1, host: a.agentId });
    });
  });
});
