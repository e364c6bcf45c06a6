// Per-change tickets, end to end: the operator declares a ticket on the host with the real agent
// CLI, the real `scan --send` carries it over a loopback stream to a real server, and a rule
// auto-approves ticketed changes inside a maintenance window, recording the ticket. Without a
// ticket, outside the window, or for a change made before the ticket, nothing is approved.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeAgentConfig } from '../agent/deliver/config.js';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { stampTicket } from '../agent/deliver/ticket.js';
import type { HostDetail, HostFinding } from '../shared/api.js';
import { parseReport } from '../shared/report.js';
import { TICKET_SCHEMA, ticketInForce } from '../shared/ticket.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { hasStackTrace } from './helpers/cli.js';
import { runCliAsync } from './helpers/processes.js';
import { makeTinyRoot } from './helpers/tiny-root.js';
import type { TinyRoot } from './helpers/tiny-root.js';

let work: string;
let server: RunningServer;
let analyst: string;
const roots: TinyRoot[] = [];

async function call(method: string, route: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${server.url}${route}`, {
    method,
    headers: { authorization: `Bearer ${analyst}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: await res.json() };
}

const windowAround = (at: number) => ({ id: 'tonight', start: new Date(at - 3_600_000).toISOString(), end: new Date(at + 3_600_000).toISOString() });
const rulesWith = (window: { id: string; start: string; end: string }) => ({
  schema: 'quicksand.rules/v1',
  rules: [{ id: 'ticketed-changes-in-the-window', match: {}, action: { type: 'auto-approve', ticket: 'CHG-*' } }],
  maintenanceWindows: [window],
});

/** A host of its own: a tiny root, an enrolled identity in its state folder. */
async function host(name: string): Promise<{ id: string; root: TinyRoot; state: string; agent: (args: string[]) => ReturnType<typeof runCliAsync>; send: () => Promise<void>; findings: () => Promise<HostFinding[]>; status: () => Promise<string> }> {
  const root = makeTinyRoot();
  roots.push(root);
  const state = path.join(work, name);
  const config = await enrollAgent(server.url, server.store.createEnrollSecret(new Date()), name);
  await writeAgentConfig(path.join(state, 'agent.json'), config);
  const agent = (args: string[]) => runCliAsync('agent', [...args, '--state', state]);
  return {
    id: config.agentId,
    root,
    state,
    agent,
    async send() {
      const r = await agent(['scan', '--root', root.root, '--manifest', root.manifest, '--send', '--timeout', '30', '-q', '--json']);
      expect(r.stderr).toMatch(/delivered/);
    },
    findings: async () => (await call('GET', `/api/v1/hosts/${config.agentId}/findings`)).json.findings as HostFinding[],
    status: async () => ((await call('GET', `/api/v1/hosts/${config.agentId}`)).json as HostDetail).status,
  };
}

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'quicksand-ticket-'));
  server = await startServer({ db: path.join(work, 'server.db'), port: 0, host: '127.0.0.1' });
  analyst = server.store.createApiToken('analyst', new Date());
  const rules = await call('POST', '/api/v1/rules', rulesWith(windowAround(Date.now())));
  expect(rules.status, JSON.stringify(rules.json)).toBe(201);
});
afterAll(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
  for (const r of roots) r.remove();
});

describe('a change ticket declared on the host', () => {
  it('auto-approves the changes made under it inside the window, recording the ticket; the same change without a ticket stays open', async () => {
    const ticketed = await host('ticketed-host');
    const declared = await ticketed.agent(['ticket', 'CHG-4711', '--for', '2h']);
    expect(declared.code, declared.stderr).toBe(0);
    expect(declared.stdout).toMatch(/change ticket CHG-4711 declared for 2h, until \S+Z/);
    expect((await ticketed.agent(['ticket'])).stdout).toMatch(/change ticket CHG-4711 in force until/);
    writeFileSync(path.join(ticketed.root.root, 'usr/bin/patched'), '#!/bin/sh\n', { mode: 0o755 });
    await ticketed.send();

    const bare = await host('bare-host');
    writeFileSync(path.join(bare.root.root, 'usr/bin/patched'), '#!/bin/sh\n', { mode: 0o755 });
    await bare.send();

    const [approved] = await ticketed.findings();
    expect(approved).toMatchObject({ path: '/usr/bin/patched', severity: 'high', detail: { ticket: 'CHG-4711' } });
    expect(approved!.triage).toEqual({
      state: 'approved',
      approval: { kind: 'rule', by: 'rule:ticketed-changes-in-the-window', reason: 'auto-approved by rule ticketed-changes-in-the-window', ticket: 'CHG-4711', at: approved!.firstSeen, expiresAt: null, window: 'tonight' },
      waiver: { rule: 'ticketed-changes-in-the-window', action: 'auto-approve', ticket: 'CHG-4711', window: 'tonight' },
    });
    expect(await ticketed.status()).toBe('cattle');

    const [open] = await bare.findings();
    expect(open).toMatchObject({ path: '/usr/bin/patched', triage: { state: 'open', approval: null, waiver: null } });
    expect((open!.detail as { ticket?: string }).ticket).toBeUndefined();
    expect(await bare.status()).toBe('pet');

    // Outside the window the ticket alone approves nothing: the rule set moves the window away.
    expect((await call('POST', '/api/v1/rules', rulesWith(windowAround(Date.now() - 86_400_000)))).status).toBe(201);
    expect((await ticketed.findings())[0]!.triage.state).toBe('open');
    expect(await ticketed.status()).toBe('pet');
    expect((await call('POST', '/api/v1/rules', rulesWith(windowAround(Date.now())))).status).toBe(201);
    expect(await ticketed.status()).toBe('cattle');
  });

  it('does not reach back to a change the server saw before it was declared', async () => {
    const late = await host('late-host');
    writeFileSync(path.join(late.root.root, 'usr/bin/before'), '#!/bin/sh\n', { mode: 0o755 });
    await late.send();
    expect((await late.agent(['ticket', 'CHG-5000', '--for', '1h'])).code).toBe(0);
    writeFileSync(path.join(late.root.root, 'usr/bin/after'), '#!/bin/sh\n', { mode: 0o755 });
    await late.send();
    const byPath = new Map((await late.findings()).map((f) => [f.path, f]));
    expect(byPath.get('/usr/bin/before')!.triage.state).toBe('open');
    expect((byPath.get('/usr/bin/before')!.detail as { ticket?: string }).ticket).toBeUndefined();
    expect(byPath.get('/usr/bin/after')!.triage).toMatchObject({ state: 'approved', approval: { ticket: 'CHG-5000' } });
    expect(await late.status()).toBe('pet');

    expect((await late.agent(['ticket', '--clear'])).stdout).toMatch(/no change ticket declared any more/);
    expect((await late.agent(['ticket'])).stdout).toBe('no change ticket in force\n');
  });

  it('is checked on the command line: an id, a duration with a unit, at most a week', async () => {
    const state = path.join(work, 'cli-checks');
    for (const [args, message] of [
      [['ticket', 'CHG-1', '--for', 'soon'], /--for: expected a duration up to 7d like 30m, 2h or 1h30m, got "soon"/],
      [['ticket', 'CHG-1', '--for', '8d'], /--for: expected a duration up to 7d/],
      [['ticket', 'CHG-1'], /--for DURATION is required/],
      [['ticket', '--for', '2h'], /expected a ticket id before --for/],
      [['ticket', 'CHG-1', 'CHG-2', '--for', '2h'], /unexpected argument "CHG-2"/],
    ] as const) {
      const r = await runCliAsync('agent', [...args, '--state', state]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(hasStackTrace(r.stderr)).toBe(false);
    }
  });

  it('is in force from its declaration to its expiry, and goes on top-level findings and change sets, through the report schema', () => {
    const t = { schema: TICKET_SCHEMA, id: 'CHG-1', declaredAt: '2026-11-29T10:00:00.000Z', expiresAt: '2026-11-29T12:00:00.000Z' } as const;
    expect(ticketInForce(t, new Date('2026-11-29T09:59:59Z'))).toBeUndefined();
    expect(ticketInForce(t, new Date('2026-11-29T11:00:00Z'))).toBe('CHG-1');
    expect(ticketInForce(t, new Date('2026-11-29T12:00:00Z'))).toBeUndefined();
    const report = parseReport(
      {
        schema: 'quicksand.report/v1', image: { name: 'i', version: '1' }, host: { hostname: 'h', root: '/' }, scannedAt: '2026-11-29T11:00:00Z',
        summary: { status: 'drift', counts: { critical: 0, high: 1, medium: 0, low: 0, info: 0 }, findings: 1, files: 1 },
        stats: { files: 1, packages: 0, bytesHashed: 0, durationMs: 1 }, warnings: [],
        findings: [{ kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: 'nc', changeSet: 'apt-1', changes: [{ kind: 'file-added', severity: 'high', path: '/usr/bin/nc' }] }],
        changeSets: [{ id: 'apt-1', tool: 'apt', packages: 1 }],
      },
      'report',
    );
    const stamped = parseReport(JSON.parse(JSON.stringify(stampTicket(report, 'CHG-1'))), 'stamped');
    expect(stamped.findings[0]!.ticket).toBe('CHG-1');
    expect(stamped.findings[0]!.changes![0]!.ticket).toBeUndefined();
    expect(stamped.changeSets![0]!.ticket).toBe('CHG-1');
    expect(() => parseReport({ ...report, findings: [{ ...report.findings[0], ticket: ' spaced ' }] }, 'frame')).toThrow(/findings\[0\]\.ticket: a ticket id has no control characters and no leading or trailing space/);
  });
});
