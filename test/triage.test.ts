// Triage over the real HTTP API, a real SQLite file and a real agent stream on loopback, with
// the server's clock injected so an approval's expiry passes without waiting for it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { createOutbox } from '../agent/deliver/outbox.js';
import { openStateDb } from '../agent/state-db.js';
import { createTransport } from '../agent/deliver/transport.js';
import type { AuditEntry, HostDetail, HostFinding } from '../shared/api.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { waitFor } from './helpers/processes.js';
import { makeTinyRoot } from './helpers/tiny-root.js';
import type { TinyRoot } from './helpers/tiny-root.js';
import { callApi } from './helpers/api.js';

let clock = Date.parse('2026-11-29T12:00:00Z');
const now = (): Date => new Date(clock);
let tiny: TinyRoot;
let work: string;
let server: RunningServer;
let tokens: { admin: string; analyst: string; auditor: string };
let hostId: string;

const call = (method: string, route: string, token: string, body?: unknown): ReturnType<typeof callApi> => callApi(server.url, method, route, token, body);
const host = async (): Promise<HostDetail> => (await call('GET', `/api/v1/hosts/${hostId}`, tokens.auditor)).json as HostDetail;
const findings = async (): Promise<HostFinding[]> => (await call('GET', `/api/v1/hosts/${hostId}/findings`, tokens.auditor)).json.findings as HostFinding[];

beforeAll(async () => {
  tiny = makeTinyRoot();
  work = mkdtempSync(path.join(tmpdir(), 'quicksand-triage-'));
  server = await startServer({ db: path.join(work, 'server.db'), port: 0, host: '127.0.0.1', now });
  tokens = {
    admin: server.store.createApiToken('admin', now()),
    analyst: server.store.createApiToken('analyst', now()),
    auditor: server.store.createApiToken('auditor', now()),
  };
  const config = await enrollAgent(server.url, server.store.createEnrollSecret(now()), 'pet-host');
  hostId = config.agentId;
  writeFileSync(path.join(tiny.root, 'usr/bin/hand-made'), '#!/bin/sh\n', { mode: 0o755 });
  writeFileSync(path.join(tiny.root, 'etc/crontab'), '0 3 * * * root /bin/true\n');
  const db = openStateDb(path.join(work, 'agent'));
  const outbox = createOutbox(db);
  const report = await tiny.scan('pet-host');
  outbox.enqueue(report, 'full', now());
  let acked = 0;
  const transport = createTransport({ config, outbox, host: { hostname: 'pet-host' }, image: report.image, onAck: (seq) => (acked = seq) });
  transport.start();
  await waitFor('the report acked', () => acked >= 1, 15_000, 20);
  await transport.stop();
  db.close();
});
afterAll(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
  tiny?.remove();
});

describe('alert sinks API', () => {
  it('takes sinks from admins only, checks them against the shared schema and never shows a credential back', async () => {
    const bad = await call('POST', '/api/v1/sinks', tokens.admin, { type: 'webhook', id: 'w', url: 'ftp://x', secret: 'short' });
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe('ALERT_SINK_INVALID');
    expect(bad.json.error.message).toMatch(/url/);
    expect(bad.json.error.message).toMatch(/secret/);
    expect((await call('POST', '/api/v1/sinks', tokens.analyst, { type: 'slack', id: 's', url: 'https://hooks.slack.com/services/T/B/X' })).status).toBe(403);
    const ok = await call('POST', '/api/v1/sinks', tokens.admin, { type: 'slack', id: 'chat', url: 'https://hooks.slack.com/services/T/B/X' });
    expect(ok.status).toBe(201);
    const listed = await call('GET', '/api/v1/sinks', tokens.admin);
    expect(JSON.stringify(listed.json)).not.toContain('/services/T/B/X');
    expect((await call('DELETE', '/api/v1/sinks/chat', tokens.admin)).status).toBe(200);
    expect((await call('DELETE', '/api/v1/sinks/chat', tokens.admin)).status).toBe(404);
  });
});

describe('triage', () => {
  it('lets an auditor read but not approve', async () => {
    expect((await host()).status).toBe('pet');
    const [f] = await findings();
    const res = await call('POST', `/api/v1/hosts/${hostId}/findings/${f!.id}/approve`, tokens.auditor, { reason: 'looks fine' });
    expect(res.status).toBe(403);
    expect(res.json.error.code).toBe('FORBIDDEN');
    expect((await call('POST', `/api/v1/hosts/${hostId}/rebaseline`, tokens.auditor, { reason: 'x' })).status).toBe(403);
    expect((await call('POST', '/api/v1/rules', tokens.auditor, { schema: 'quicksand.rules/v1' })).status).toBe(403);
    expect((await call('GET', '/api/v1/audit', tokens.auditor)).status).toBe(200);
  });

  it('refuses an approval without a reason, naming the field', async () => {
    const [f] = await findings();
    const res = await call('POST', `/api/v1/hosts/${hostId}/findings/${f!.id}/approve`, tokens.analyst, { ticket: 'CHG-1' });
    expect(res.status).toBe(400);
    expect(res.json.error.message).toMatch(/reason/);
  });

  it('turns the host cattle with approvals, and pet again once one expires', async () => {
    const open = await findings();
    expect(open.map((f) => f.path).sort()).toEqual(['/etc/crontab', '/usr/bin/hand-made']);
    const expiresAt = new Date(clock + 3_600_000).toISOString();
    for (const f of open) {
      const res = await call('POST', `/api/v1/hosts/${hostId}/findings/${f.id}/approve`, tokens.analyst, {
        reason: 'emergency fix, to be baked into the next image',
        ticket: 'CHG-4711',
        ...(f.path === '/usr/bin/hand-made' ? { expiresAt } : {}),
      });
      expect(res.status, JSON.stringify(res.json)).toBe(201);
    }
    expect((await host()).status).toBe('cattle');
    expect((await host()).petSince).toBeNull();
    const analystId = tokens.analyst.split('.')[1];
    const byPath = async (p: string): Promise<HostFinding> => (await findings()).find((f) => f.path === p)!;
    expect((await byPath('/usr/bin/hand-made')).triage).toEqual({
      state: 'approved',
      approval: { kind: 'finding', by: analystId, reason: 'emergency fix, to be baked into the next image', ticket: 'CHG-4711', at: now().toISOString(), expiresAt },
      waiver: null,
    });
    expect((await byPath('/etc/crontab')).triage).toMatchObject({ state: 'approved', approval: { ticket: 'CHG-4711', expiresAt: null } });

    clock += 2 * 3_600_000;
    expect(server.store.triage.expireApprovals(now())).toEqual({ expired: 1, hosts: [hostId] });
    const h = await host();
    expect(h.status).toBe('pet');
    expect(h.openFindings).toBe(1);
    // The expired approval is still shown: who accepted it, why, and until when.
    expect((await byPath('/usr/bin/hand-made')).triage).toMatchObject({ state: 'approval-expired', approval: { by: analystId, ticket: 'CHG-4711', expiresAt } });
    expect((await byPath('/etc/crontab')).triage.state).toBe('approved');
  });

  it('reopens an approval, re-baselines the host and waives by rule', async () => {
    const cron = (await findings()).find((f) => f.path === '/etc/crontab')!;
    const reopened = await call('POST', `/api/v1/hosts/${hostId}/findings/${cron.id}/reopen`, tokens.analyst, { reason: 'the ticket was closed as rejected' });
    expect(reopened.status).toBe(200);
    expect((await host()).openFindings).toBe(2);
    expect((await call('POST', `/api/v1/hosts/${hostId}/findings/${cron.id}/reopen`, tokens.analyst, { reason: 'again' })).status).toBe(409);
    expect((await findings()).find((f) => f.id === cron.id)!.triage).toEqual({ state: 'open', approval: null, waiver: null });

    const rebased = await call('POST', `/api/v1/hosts/${hostId}/rebaseline`, tokens.admin, { reason: 'this host is the new reference', ticket: 'CHG-5000' });
    expect(rebased.status).toBe(201);
    expect(rebased.json).toEqual({ version: 1, accepted: 2, status: 'cattle', state: 'awaiting-observation', agentAsked: false });
    expect((await host()).status).toBe('cattle');
    const { json: b } = await call('GET', `/api/v1/hosts/${hostId}/baselines`, tokens.auditor);
    expect(b.baselines).toMatchObject([{ version: 1, state: 'awaiting-observation', image: { name: 'tiny', version: '1' }, parent: null }]);
    expect(b.baselines[0].accepted.map((f: { path: string }) => f.path).sort()).toEqual(['/etc/crontab', '/usr/bin/hand-made']);

    // Reopen the cron job again, then waive /etc/crontab by rule: cattle without an approval.
    expect((await call('POST', `/api/v1/hosts/${hostId}/findings/${cron.id}/reopen`, tokens.analyst, { reason: 'review it as a class' })).status).toBe(200);
    expect((await host()).status).toBe('pet');
    const rules = await call('POST', '/api/v1/rules', tokens.analyst, {
      schema: 'quicksand.rules/v1',
      rules: [{ id: 'cron-jobs-are-config-management', match: { path: '/etc/crontab' }, action: { type: 'suppress' } }],
    });
    expect(rules.status, JSON.stringify(rules.json)).toBe(201);
    expect((await host()).status).toBe('cattle');
    expect((await findings()).find((f) => f.id === cron.id)!.triage).toEqual({ state: 'waived', approval: null, waiver: { rule: 'cron-jobs-are-config-management', action: 'suppress' } });
    const bad = await call('POST', '/api/v1/rules', tokens.analyst, { schema: 'quicksand.rules/v1', rules: [{ id: 'x', action: { type: 'nope' } }] });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/rules\[0\]\.action/);
  });

  it('keeps every act in the append-only audit log, with who, when and why', async () => {
    const { json } = await call('GET', '/api/v1/audit', tokens.auditor);
    const entries = json.entries as AuditEntry[];
    expect(entries.map((e) => e.action)).toEqual(['sink-create', 'sink-delete', 'approve', 'approve', 'approval-expired', 'reopen', 'rebaseline', 'reopen', 'rules-update']);
    const analystId = tokens.analyst.split('.')[1];
    expect(entries.filter((e) => e.role === 'analyst').every((e) => e.actor === analystId)).toBe(true);
    expect(entries.find((e) => e.action === 'rebaseline')).toMatchObject({ role: 'admin', target: `host:${hostId}`, reason: 'this host is the new reference' });
    expect(entries.find((e) => e.action === 'approval-expired')).toMatchObject({ actor: 'system', at: now().toISOString() });
    expect(entries.every((e) => e.at && e.target)).toBe(true);
    expect(JSON.stringify(entries)).not.toContain(tokens.analyst);
  });
});
