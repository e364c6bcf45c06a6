// Realtime drift to an on-call alert, every leg real except the server's store and wire (not
// built yet): a watched debootstrap tree, a real dpkg install, the event report through JSON and
// its schema, the rules, the alert policy, and the webhook to an HTTP receiver on loopback.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { defaultPolicy } from '../shared/policy.js';
import { parseAlertSink } from '../shared/alerts.js';
import { parseReport } from '../shared/report.js';
import type { Report } from '../shared/report.js';
import { emptyRuleSet } from '../shared/rules.js';
import { manifestFromObservation } from '../agent/manifest/build.js';
import { observe } from '../agent/fingerprint/observe.js';
import { openRoot } from '../agent/root.js';
import { startWatch } from '../agent/daemon/watch.js';
import { applyRules, compileRules } from '../server/rules.js';
import { DEFAULT_ALERT_POLICY, emptyHostAlertMemory, planAlerts } from '../server/alerts/policy.js';
import { deliverDue, planDeliveries } from '../server/alerts/queue.js';
import { verifySignature } from '../server/alerts/webhook.js';
import { createInMemoryAlertQueueForTests } from './helpers/in-memory-alert-queue.js';
import { startReceiver } from './helpers/http-receiver.js';
import type { Receiver } from './helpers/http-receiver.js';
import { copyTree, ensureMinbase, withPackagesPath } from './helpers/debian-root.js';

const SECRET = 'pipeline-test-secret-0123456789';
let tree: { dir: string; remove: () => void };
let receiver: Receiver;

beforeAll(async () => {
  tree = copyTree(ensureMinbase());
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver?.close();
  tree?.remove();
});

describe('from a file write to one webhook delivery', () => {
  it('turns a dropped binary and a whole dpkg run into exactly one alert each', async () => {
    const root = await openRoot(tree.dir);
    const manifest = manifestFromObservation(await observe(root, defaultPolicy()), defaultPolicy(), { name: 'debian-minbase', version: '1' }, new Date());
    const sink = parseAlertSink({ type: 'webhook', id: 'oncall', url: receiver.url('/hook'), secret: SECRET }, 'sink');
    const queue = createInMemoryAlertQueueForTests();
    const rules = compileRules(emptyRuleSet());
    const host = { id: 'agent-1', hostname: 'pipeline-host', labels: {} };
    let memory = emptyHostAlertMemory();
    // Room for every change set: this test is about grouping, the throttle has its own.
    const policy = { ...DEFAULT_ALERT_POLICY, throttle: { max: 10, windowMs: 60_000 } };
    const reports: Report[] = [];

    // What the server will do with each report: rules, alert policy, queue.
    const ingest = async (wire: string): Promise<void> => {
      const report = parseReport(JSON.parse(wire), 'report frame');
      reports.push(report);
      const evaluated = applyRules(report.findings, { host, image: report.image, at: new Date(report.scannedAt) }, rules);
      const planned = planAlerts({ host, image: report.image, findings: evaluated, hostStatus: 'pet', now: new Date(report.scannedAt), memory, policy });
      memory = planned.memory;
      await queue.enqueue(planDeliveries(planned.alerts, [sink], new Date(), randomUUID));
    };

    const watch = startWatch({ root, manifest, hostname: 'pipeline-host', debounceMs: 1000, maxWaitMs: 30_000, onReport: (r) => ingest(JSON.stringify(r)) });
    try {
      await watch.ready;
      writeFileSync(path.join(tree.dir, 'usr/local/sbin/implant'), '#!/bin/sh\n', { mode: 0o755 });
      await vi.waitFor(() => expect(reports).toHaveLength(1), { timeout: 20_000, interval: 20 });

      const archives = path.join(withPackagesPath(), 'var/cache/apt/archives');
      const deb = readdirSync(archives).find((n) => n.startsWith('netcat-openbsd_') && n.endsWith('.deb'))!;
      const libbsd = readdirSync(archives).filter((n) => /^libbsd0_.*\.deb$/.test(n));
      for (const n of [deb, ...libbsd]) copyFileSync(path.join(archives, n), path.join(tree.dir, 'var/cache/apt/archives', n));
      execFileSync('chroot', [tree.dir, 'dpkg', '-i', ...[...libbsd, deb].map((n) => `/var/cache/apt/archives/${n}`)], {
        stdio: 'ignore',
        timeout: 60_000,
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive', LANG: 'C' },
      });
      await vi.waitFor(() => expect(reports.some((r) => r.scope?.packages)).toBe(true), { timeout: 30_000, interval: 20 });
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        await watch.idle();
      }
    } finally {
      await watch.close();
    }

    await deliverDue({ queue, sinks: new Map([[sink.id, sink]]), fetch, now: () => new Date() });
    const bodies = receiver.requests.map((r) => {
      expect(verifySignature(SECRET, r.body, r.headers['x-quicksand-signature'] as string)).toBe(true);
      return JSON.parse(r.body.toString('utf8'));
    });
    const installFiles = reports.flatMap((r) => r.findings).filter((f) => f.kind === 'package-added').reduce((n, f) => n + (f.changes?.length ?? 0), 0);
    expect(installFiles).toBeGreaterThan(10);
    // The dropped binary: one alert. One dpkg run installing two packages is one change set
    // (from dpkg's own log): one alert, however many files it brought and however many event
    // reports carried them.
    expect(bodies.map((b) => b.alert.findings.map((f: { kind: string; name?: string; path?: string }) => `${f.kind} ${f.name ?? f.path}`)).sort()).toEqual(
      [['file-added /usr/local/sbin/implant'], ['package-added libbsd0', 'package-added netcat-openbsd']].sort(),
    );
    const named = reports.flatMap((r) => r.changeSets ?? []);
    expect(named.length).toBeGreaterThan(0);
    expect(reports.flatMap((r) => r.findings).filter((f) => f.kind === 'package-added').every((f) => f.changeSet === named[0]!.id)).toBe(true);
  });
});
