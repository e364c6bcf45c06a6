// The alert throttle and dedup memory set on the server's command line: validated with messages
// that say what to write instead, explained by --help, and really in force in the ingest thread
// of a server process started with them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { createOutbox } from '../agent/deliver/outbox.js';
import { openStateDb } from '../agent/state-db.js';
import { createTransport } from '../agent/deliver/transport.js';
import { DEFAULT_ALERT_POLICY } from '../server/alerts/policy.js';
import { runServerCli } from '../server/cli.js';
import { parseAlertOptions } from '../server/commands/start.js';
import { hasStackTrace } from './helpers/cli.js';
import { startReceiver } from './helpers/http-receiver.js';
import type { Receiver } from './helpers/http-receiver.js';
import { freePort, killAll, runCli, startChild, waitFor } from './helpers/processes.js';
import { makeTinyRoot } from './helpers/tiny-root.js';
import type { TinyRoot } from './helpers/tiny-root.js';

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runServerCli(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), stopSignal: Promise.resolve() });
  return { code, stdout, stderr };
}

describe('quicksand-server start --alert-throttle / --alert-dedup', () => {
  it('explains both settings, their defaults and the duration format in --help', async () => {
    const { code, stdout } = await cli(['start', '--help']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/--alert-throttle N\/DURATION[\s\S]*page at most N times per host per DURATION \(default: 3\/15m\)/);
    expect(stdout).toMatch(/--alert-dedup DURATION[\s\S]*\(default: 30d\)/);
    expect(stdout).toMatch(/Durations: .*s m h d/);
  });

  it.each([
    [['--alert-throttle', 'lots'], /--alert-throttle: expected N\/DURATION with N at least 1, like 3\/15m .*got "lots"/],
    [['--alert-throttle', '0/15m'], /--alert-throttle: expected N\/DURATION with N at least 1/],
    [['--alert-throttle', '3/15'], /--alert-throttle: .*got "3\/15"/],
    [['--alert-dedup', '30'], /--alert-dedup: expected a duration like 30d, 12h or 1h30m \(units s, m, h, d\), got "30"/],
    [['--alert-dedup', 'forever'], /--alert-dedup: .*got "forever"/],
  ])('refuses %j with exit 2, one line saying what to write, no stack trace', async (args, message) => {
    const r = runCli('server', ['start', '--db', path.join(tmpdir(), 'never-created', 'x.db'), ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/see quicksand-server start --help/);
    expect(hasStackTrace(r.stderr)).toBe(false);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('turns the options into the alert policy over the defaults', () => {
    expect(parseAlertOptions(undefined, undefined)).toBeUndefined();
    expect(parseAlertOptions('1/1h30m', undefined)).toEqual({ ...DEFAULT_ALERT_POLICY, throttle: { max: 1, windowMs: 5_400_000 } });
    expect(parseAlertOptions(undefined, '12h')).toEqual({ ...DEFAULT_ALERT_POLICY, dedupMemoryMs: 43_200_000 });
  });
});

describe('a server started with --alert-throttle 1/1h', () => {
  let tiny: TinyRoot;
  let work: string;
  let receiver: Receiver;
  beforeAll(async () => {
    tiny = makeTinyRoot();
    work = mkdtempSync(path.join(tmpdir(), 'quicksand-alert-settings-'));
    receiver = await startReceiver();
  });
  afterEach(() => killAll());
  afterAll(async () => {
    await receiver?.close();
    rmSync(work, { recursive: true, force: true });
    tiny?.remove();
  });

  it('pages once for two changes in the hour (the default would page twice)', async () => {
    const db = path.join(work, 'server.db');
    const port = await freePort();
    const server = startChild('server', ['start', '--db', db, '--port', String(port), '--alert-throttle', '1/1h', '--alert-dedup', '2h']);
    await waitFor('the server to listen', () => server.output().includes('listening on') || (server.proc.exitCode !== null ? Promise.reject(new Error(server.output())) : false));
    const url = `http://127.0.0.1:${port}`;
    const admin = runCli('server', ['token', 'create', '--role', 'admin', '--db', db]).stdout.trim();
    const secret = runCli('server', ['enroll-secret', '--db', db]).stdout.trim();
    const sink = await fetch(`${url}/api/v1/sinks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'webhook', id: 'oncall', url: receiver.url('/hook'), secret: 'alert-settings-secret-0123456789' }),
    });
    expect(sink.status).toBe(201);

    const config = await enrollAgent(url, secret, 'busy-host');
    const state = openStateDb(path.join(work, 'agent'));
    const outbox = createOutbox(state);
    const acked = new Set<number>();
    const transport = createTransport({ config, outbox, host: { hostname: 'busy-host' }, image: { name: 'tiny', version: '1' }, onAck: (seq) => acked.add(seq) });
    transport.start();
    try {
      writeFileSync(path.join(tiny.root, 'usr/bin/first'), '#!/bin/sh\n', { mode: 0o755 });
      const one = outbox.enqueue(await tiny.scan('busy-host'), 'full', new Date());
      transport.notify();
      await waitFor('the first report acked', () => acked.has(one.seq));
      writeFileSync(path.join(tiny.root, 'usr/bin/second'), '#!/bin/sh\n', { mode: 0o755 });
      const two = outbox.enqueue(await tiny.scan('busy-host'), 'full', new Date());
      transport.notify();
      await waitFor('the second report acked', () => acked.has(two.seq));
    } finally {
      await transport.stop();
      state.close();
    }
    const res = await fetch(`${url}/api/v1/alerts?host=${config.agentId}`, { headers: { authorization: `Bearer ${admin}` } });
    const { deliveries } = (await res.json()) as { deliveries: Array<{ action: string; alert: { findings: Array<{ path?: string }> } }> };
    // The second change is held by the throttle, not queued: one trigger, for the first change.
    expect(deliveries.map((d) => [d.action, d.alert.findings.map((f) => f.path)])).toEqual([['trigger', ['/usr/bin/first']]]);
    expect(await server.kill('SIGTERM')).toBe(0);
  });
});
