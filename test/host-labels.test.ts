// Host labels over the real HTTP API, a real SQLite file, real agent streams on loopback and a
// real agent daemon declaring its own: a rule that matches a label changes the severity or
// suppresses the drift of the labelled host, and of no other; a host's own labels match only
// the rules that name them agent/NAME.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeAgentConfig } from '../agent/deliver/config.js';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { createOutbox } from '../agent/deliver/outbox.js';
import { openStateDb } from '../agent/state-db.js';
import { createTransport } from '../agent/deliver/transport.js';
import type { AuditEntry, HostDetail, HostFinding } from '../shared/api.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { hasStackTrace } from './helpers/cli.js';
import { killAll, runCli, startChild, waitFor } from './helpers/processes.js';
import { makeTinyRoot } from './helpers/tiny-root.js';
import type { TinyRoot } from './helpers/tiny-root.js';
import { callApi } from './helpers/api.js';

let tiny: TinyRoot;
let work: string;
let server: RunningServer;
let analyst: string;
let auditor: string;

const call = (method: string, route: string, token: string, body?: unknown): ReturnType<typeof callApi> => callApi(server.url, method, route, token, body);
const host = async (id: string): Promise<HostDetail> => (await call('GET', `/api/v1/hosts/${id}`, auditor)).json as HostDetail;
const findings = async (id: string): Promise<HostFinding[]> => (await call('GET', `/api/v1/hosts/${id}/findings`, auditor)).json.findings as HostFinding[];
const handMade = async (id: string): Promise<HostFinding | undefined> => (await findings(id)).find((f) => f.path === '/usr/bin/hand-made');

/** Enrols a host and sends one full report of the tiny root through a real stream. */
async function reportingHost(name: string): Promise<string> {
  const config = await enrollAgent(server.url, server.store.createEnrollSecret(new Date()), name);
  const db = openStateDb(path.join(work, name));
  const outbox = createOutbox(db);
  const report = await tiny.scan(name);
  const entry = outbox.enqueue(report, 'full', new Date());
  let acked = 0;
  const transport = createTransport({ config, outbox, host: { hostname: name }, image: report.image, onAck: (seq) => (acked = seq) });
  transport.start();
  try {
    await waitFor(`${name}'s report acked`, () => acked >= entry.seq, 15_000, 20);
  } finally {
    await transport.stop();
    db.close();
  }
  return config.agentId;
}

beforeAll(async () => {
  tiny = makeTinyRoot();
  writeFileSync(path.join(tiny.root, 'usr/bin/hand-made'), '#!/bin/sh\n', { mode: 0o755 });
  work = mkdtempSync(path.join(tmpdir(), 'quicksand-labels-'));
  server = await startServer({ db: path.join(work, 'server.db'), port: 0, host: '127.0.0.1' });
  analyst = server.store.createApiToken('analyst', new Date());
  auditor = server.store.createApiToken('auditor', new Date());
  const rules = await call('POST', '/api/v1/rules', analyst, {
    schema: 'quicksand.rules/v1',
    rules: [
      { id: 'dev-hosts-are-low', match: { hostLabels: { env: 'dev' } }, action: { type: 'severity', severity: 'low' } },
      { id: 'the-lab-is-not-watched', match: { hostLabels: { team: 'lab*' } }, action: { type: 'suppress' } },
    ],
  });
  expect(rules.status, JSON.stringify(rules.json)).toBe(201);
});
afterEach(() => killAll());
afterAll(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
  tiny?.remove();
});

describe('host labels', () => {
  it('set through the API change the severity of the labelled host only, at once', async () => {
    const dev = await reportingHost('dev-host');
    const plain = await reportingHost('plain-host');
    expect((await handMade(dev))!.severity).toBe('high');

    const set = await call('PUT', `/api/v1/hosts/${dev}/labels`, analyst, { labels: { env: 'dev' }, reason: 'sandbox for the web team' });
    expect(set.status, JSON.stringify(set.json)).toBe(200);
    expect(set.json).toMatchObject({ labels: { env: 'dev' }, api: { env: 'dev' }, agent: {} });

    expect((await handMade(dev))!.severity).toBe('low');
    expect((await handMade(plain))!.severity).toBe('high');
    expect((await host(dev)).labels).toEqual({ env: 'dev' });
    expect((await host(plain)).labels).toEqual({});
    // Low still counts: lowered, not waived.
    expect((await host(dev)).status).toBe('pet');
  });

  it('declared by the agent (run --label) match only the rules that name them agent/NAME: a host cannot declare itself into a waiver', async () => {
    const state = path.join(work, 'lab-agent');
    const config = await enrollAgent(server.url, server.store.createEnrollSecret(new Date()), 'lab-host');
    await writeAgentConfig(path.join(state, 'agent.json'), config);
    const daemon = startChild('agent', ['run', '--root', tiny.root, '--manifest', tiny.manifest, '--state', state, '--no-watch', '--schedule', '0 0 1 1 *', '--label', 'team=lab1', '--label', 'env=test']);
    const lab = config.agentId;
    const reported = await waitFor('the lab host to report', async () => {
      const h = await host(lab);
      return h.reports >= 1 && h;
    });
    expect(reported.labels).toEqual({ 'agent/team': 'lab1', 'agent/env': 'test' });
    expect(reported.labelSources).toEqual({ api: {}, agent: { team: 'lab1', env: 'test' } });
    // "team: lab*" is a label the API sets: the host saying team=lab1 itself does not waive its drift.
    expect((await handMade(lab))!.triage.state).toBe('open');
    expect(reported.status).toBe('pet');

    // A rule that trusts what the host says names the agent's label.
    const rules = await call('POST', '/api/v1/rules', analyst, {
      schema: 'quicksand.rules/v1',
      rules: [
        { id: 'dev-hosts-are-low', match: { hostLabels: { env: 'dev' } }, action: { type: 'severity', severity: 'low' } },
        { id: 'the-lab-is-not-watched', match: { hostLabels: { team: 'lab*' } }, action: { type: 'suppress' } },
        { id: 'self-declared-lab', match: { hostLabels: { 'agent/team': 'lab*' } }, action: { type: 'suppress' } },
      ],
    });
    expect(rules.status, JSON.stringify(rules.json)).toBe(201);
    const f = (await handMade(lab))!;
    expect(f.severity).toBe('high');
    expect(f.triage).toMatchObject({ state: 'waived', waiver: { rule: 'self-declared-lab', action: 'suppress' } });
    expect((await host(lab)).status).toBe('cattle');

    // The API says otherwise about the agent's label: its value is the one in force.
    const set = await call('PUT', `/api/v1/hosts/${lab}/labels`, analyst, { labels: { 'agent/team': 'payments' } });
    expect(set.status).toBe(200);
    expect(set.json).toMatchObject({ labels: { 'agent/team': 'payments', 'agent/env': 'test' }, api: { 'agent/team': 'payments' }, agent: { team: 'lab1', env: 'test' }, status: 'pet' });
    expect((await handMade(lab))!.triage.state).toBe('open');
    expect(await daemon.kill('SIGTERM')).toBe(0);
  });

  it('are refused with a message naming the bad field, and only analysts and admins set them', async () => {
    const id = (await call('GET', '/api/v1/hosts', auditor)).json.hosts[0].id as string;
    const bad = await call('PUT', `/api/v1/hosts/${id}/labels`, analyst, { labels: { 'not a name': 'x', env: 'a\u0007b' } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe('QUERY_INVALID');
    expect(bad.json.error.message).toMatch(/body: labels\.not a name: a label name is 1-63 letters/);
    expect(bad.json.error.message).toMatch(/labels\.env: a label value has no control characters/);
    const wrongShape = await call('PUT', `/api/v1/hosts/${id}/labels`, analyst, { env: 'prod' });
    expect(wrongShape.status).toBe(400);
    expect(wrongShape.json.error.message).toMatch(/labels/);
    expect((await call('PUT', `/api/v1/hosts/${id}/labels`, auditor, { labels: { env: 'prod' } })).status).toBe(403);
    expect((await call('PUT', '/api/v1/hosts/no-such-host/labels', analyst, { labels: {} })).status).toBe(404);

    const { json } = await call('GET', '/api/v1/audit?action=labels-set', auditor);
    const entries = json.entries as AuditEntry[];
    expect(entries).toHaveLength(2);
    expect(entries[0]).toMatchObject({ role: 'analyst', reason: 'sandbox for the web team', detail: { api: { env: 'dev' }, labels: { env: 'dev' } } });
  });

  it('given on the agent command line are checked before the daemon starts', () => {
    const r = runCli('agent', ['run', '--root', tiny.root, '--manifest', tiny.manifest, '--state', path.join(work, 'never'), '--label', 'env']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--label: expected NAME=VALUE like env=prod, got "env"/);
    expect(hasStackTrace(r.stderr)).toBe(false);
  });
});
