// Durable delivery over real loopback sockets and a real SQLite file: whatever dies (the server,
// the agent, the network), every report the agent produced is stored exactly once, in order.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { createOutbox } from '../agent/deliver/outbox.js';
import { openStateDb } from '../agent/state-db.js';
import { createTransport } from '../agent/deliver/transport.js';
import { writeAgentConfig } from '../agent/deliver/config.js';
import type { HostDetail } from '../shared/api.js';
import { apiGet, freePort, killAll, runCli, startChild, startServerChild, waitFor } from './helpers/processes.js';
import { makeTinyRoot } from './helpers/tiny-root.js';
import { expectExactlyOnceInOrder } from './helpers/report-history.js';
import type { TinyRoot } from './helpers/tiny-root.js';

let tiny: TinyRoot;
beforeAll(() => {
  tiny = makeTinyRoot();
});
afterEach(() => killAll());
afterAll(() => tiny.remove());

async function setUpServer(name: string) {
  const dir = path.join(tiny.dir, name);
  mkdirSync(dir, { recursive: true });
  const db = path.join(dir, 'server.db');
  const port = await freePort();
  const server = await startServerChild(db, port);
  const secret = runCli('server', ['enroll-secret', '--db', db]).stdout.trim();
  const apiToken = runCli('server', ['token', 'create', '--role', 'auditor', '--db', db]).stdout.trim();
  return { dir, db, port, server, secret, apiToken, state: path.join(dir, 'agent-state') };
}

function outboxState(state: string): { depth: number; lastSeq: number } {
  const db = openStateDb(state);
  try {
    const o = createOutbox(db);
    return { depth: o.depth(), lastSeq: o.lastSeq() };
  } finally {
    db.close();
  }
}

describe('durable delivery', () => {
  it('stores every report exactly once and in order when the server is killed -9 mid-stream', async () => {
    const s = await setUpServer('server-kill');
    const config = await enrollAgent(s.server.url, s.secret, 'burst-host');
    const db = openStateDb(s.state);
    const outbox = createOutbox(db);
    const report = await tiny.scan('burst-host');
    const total = 1500;
    for (let i = 0; i < total; i++) outbox.enqueue(report, 'full', new Date());
    let acks = 0;
    const transport = createTransport({
      config,
      outbox,
      host: { hostname: 'burst-host' },
      image: report.image,
      onAck: () => acks++,
      backoff: { firstMaxMs: 100, baseMs: 200, capMs: 1000 },
    });
    transport.start();
    await waitFor('some acks', () => acks >= 200, 30_000, 5);
    await s.server.kill('SIGKILL');
    // Really mid-stream: reports were in flight or still waiting when the server died.
    expect(outbox.depth()).toBeGreaterThan(0);
    const server = await startServerChild(s.db, s.port);
    await waitFor('the outbox to drain', () => outbox.depth() === 0, 60_000);
    await transport.stop();
    db.close();
    await expectExactlyOnceInOrder(server.url, s.apiToken, config.agentId, total);
  });

  it('stores every report exactly once and in order when the agent is killed -9 mid-stream and restarted', async () => {
    const s = await setUpServer('agent-kill');
    const enrolled = runCli('agent', ['enroll', '--server', s.server.url, '--secret', s.secret, '--state', s.state]);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    // Reports the agent could not send earlier: the restarted daemon is streaming these when it dies.
    const db = openStateDb(s.state);
    const report = await tiny.scan('agent-kill-host');
    const outbox = createOutbox(db);
    for (let i = 0; i < 1500; i++) outbox.enqueue(report, 'full', new Date());
    db.close();
    const agentId = (enrolled.stdout.match(/agent ([0-9a-f]+)/) ?? [])[1]!;
    const runArgs = ['run', '--root', tiny.root, '--manifest', tiny.manifest, '--state', s.state, '--schedule', '* * * * * *', '--reconnect-max', '1'];

    const first = startChild('agent', runArgs);
    const hostUrl = `${s.server.url}/api/v1/hosts/${agentId}`;
    await waitFor('the agent to stream', async () => (await apiGet<HostDetail>(hostUrl, s.apiToken)).reports >= 100, 30_000, 20);
    await first.kill('SIGKILL');
    expect(outboxState(s.state).depth).toBeGreaterThan(0);

    const second = startChild('agent', runArgs);
    await waitFor('the restarted agent to stream', async () => (await apiGet<HostDetail>(hostUrl, s.apiToken)).reports >= 1500, 60_000, 100);
    expect(await second.kill('SIGTERM')).toBe(0);
    // Whatever the daemon queued last is delivered by a one-shot send, which also adds one.
    const send = runCli('agent', ['scan', '--root', tiny.root, '--manifest', tiny.manifest, '--state', s.state, '--send', '--timeout', '30', '-q']);
    expect(send.code, send.stderr).toBe(0);
    const { depth, lastSeq } = outboxState(s.state);
    expect(depth).toBe(0);
    expect(lastSeq).toBeGreaterThan(1500);
    await expectExactlyOnceInOrder(s.server.url, s.apiToken, agentId, lastSeq);
  });

  it('scans when the server sends scan-now, outside the schedule', async () => {
    const s = await setUpServer('scan-now');
    const admin = runCli('server', ['token', 'create', '--role', 'analyst', '--db', s.db]).stdout.trim();
    const enrolled = runCli('agent', ['enroll', '--server', s.server.url, '--secret', s.secret, '--state', s.state]);
    const agentId = (enrolled.stdout.match(/agent ([0-9a-f]+)/) ?? [])[1]!;
    // Scheduled once a year: every report after the start-up scan comes from the command.
    const daemon = startChild('agent', ['run', '--root', tiny.root, '--manifest', tiny.manifest, '--state', s.state, '--schedule', '0 0 1 1 *']);
    const hostUrl = `${s.server.url}/api/v1/hosts/${agentId}`;
    await waitFor('the start-up report', async () => (await apiGet<HostDetail>(hostUrl, s.apiToken)).reports === 1 && (await apiGet<HostDetail>(hostUrl, s.apiToken)).connected);
    const res = await fetch(`${hostUrl}/scan-now`, { method: 'POST', headers: { authorization: `Bearer ${admin}` } });
    expect(res.status).toBe(202);
    await waitFor('the commanded report', async () => (await apiGet<HostDetail>(hostUrl, s.apiToken)).reports === 2);
    expect(daemon.output()).toContain('server asked for scan-now');
    expect(await daemon.kill('SIGTERM')).toBe(0);
  });

  it('runs each full scan in a child process: a failing one is logged, the daemon stays up and scans again', async () => {
    const s = await setUpServer('scan-child');
    const admin = runCli('server', ['token', 'create', '--role', 'analyst', '--db', s.db]).stdout.trim();
    const enrolled = runCli('agent', ['enroll', '--server', s.server.url, '--secret', s.secret, '--state', s.state]);
    const agentId = (enrolled.stdout.match(/agent ([0-9a-f]+)/) ?? [])[1]!;
    const manifest = path.join(s.dir, 'manifest.json.gz');
    copyFileSync(tiny.manifest, manifest);
    const daemon = startChild('agent', ['run', '--root', tiny.root, '--manifest', manifest, '--state', s.state, '--schedule', '0 0 1 1 *', '--no-watch']);
    const hostUrl = `${s.server.url}/api/v1/hosts/${agentId}`;
    const reports = async (): Promise<number> => (await apiGet<HostDetail>(hostUrl, s.apiToken)).reports;
    await waitFor('the start-up report', async () => (await reports()) === 1 && (await apiGet<HostDetail>(hostUrl, s.apiToken)).connected).catch((e) => {
      throw new Error(`${e}\n${daemon.output()}`);
    });
    const scanNow = async (): Promise<void> => {
      expect((await fetch(`${hostUrl}/scan-now`, { method: 'POST', headers: { authorization: `Bearer ${admin}` } })).status).toBe(202);
    };
    // The child reads the manifest file; damaged, the scan fails with the child's own message.
    writeFileSync(manifest, 'not a manifest');
    await scanNow();
    await waitFor('the failed scan to be logged', () => /scan \(server command\) failed: full scan failed \(exit 2\): .*not valid JSON/.test(daemon.output()));
    expect(daemon.proc.exitCode).toBe(null);
    expect(await reports()).toBe(1);
    copyFileSync(tiny.manifest, manifest);
    await scanNow();
    await waitFor('the next report', async () => (await reports()) === 2);
    expect(await daemon.kill('SIGTERM')).toBe(0);
  });

  it('delivers everything in order after the agent was offline for many scans', async () => {
    const s = await setUpServer('offline');
    const enrolled = runCli('agent', ['enroll', '--server', s.server.url, '--secret', s.secret, '--state', s.state]);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    const agentId = (enrolled.stdout.match(/agent ([0-9a-f]+)/) ?? [])[1]!;
    expect(await s.server.kill('SIGTERM')).toBe(0);

    const daemon = startChild('agent', ['run', '--root', tiny.root, '--manifest', tiny.manifest, '--state', s.state, '--schedule', '* * * * * *', '--reconnect-max', '1']);
    await waitFor('scans to pile up', () => (daemon.output().match(/queued/g) ?? []).length >= 6, 30_000);
    expect(await daemon.kill('SIGTERM')).toBe(0);
    for (let i = 0; i < 2; i++) {
      const r = runCli('agent', ['scan', '--root', tiny.root, '--manifest', tiny.manifest, '--state', s.state, '--send', '--timeout', '1', '-q']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/did not acknowledge report \d+ within 1 s; it stays in the outbox/);
    }
    const waiting = outboxState(s.state);
    expect(waiting.depth).toBe(waiting.lastSeq);
    expect(waiting.depth).toBeGreaterThanOrEqual(8);

    const server = await startServerChild(s.db, s.port);
    const r = runCli('agent', ['scan', '--root', tiny.root, '--manifest', tiny.manifest, '--state', s.state, '--send', '--timeout', '30', '-q']);
    expect(r.code, r.stderr).toBe(0);
    expect(outboxState(s.state)).toEqual({ depth: 0, lastSeq: waiting.lastSeq + 1 });
    await expectExactlyOnceInOrder(server.url, s.apiToken, agentId, waiting.lastSeq + 1);
  });
});
