// The alert throttle, held alerts and what a delivery says, on every store backend (a real SQLite
// file, …) and a real webhook receiver on loopback, with the clock passed in so a throttle window passes at once.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAlertSink } from '../shared/alerts.js';
import { REPORT_SCHEMA, summarize } from '../shared/report.js';
import type { Finding } from '../shared/report.js';
import type { ReportFrame } from '../shared/protocol.js';
import { parseRuleSet, RULES_SCHEMA } from '../shared/rules.js';
import { DEFAULT_ALERT_POLICY } from '../server/alerts/policy.js';
import type { AlertPolicy } from '../server/alerts/policy.js';
import { deliverDue } from '../server/alerts/queue.js';
import { createApp } from '../server/api/app.js';
import { createMetrics } from '../server/metrics.js';
import type { Store } from '../server/store/types.js';
import { STORE_BACKENDS } from './helpers/store-backends.js';
import type { FreshStore } from './helpers/store-backends.js';
import { startReceiver } from './helpers/http-receiver.js';
import type { Receiver } from './helpers/http-receiver.js';

const WINDOW = 10 * 60_000;
const policy: AlertPolicy = { ...DEFAULT_ALERT_POLICY, throttle: { max: 1, windowMs: WINDOW } };
const t0 = Date.parse('2026-11-29T12:00:00Z');
const actor = { id: 'analyst-1', role: 'analyst' };

describe.each(STORE_BACKENDS)('on the $name store', (backend) => {
  let db: FreshStore;
  let store: Store;
  let receiver: Receiver;
  let clock: number;
  let hostId: string;
  let seq: number;
  const now = (): Date => new Date(clock);

  beforeEach(async () => {
    db = await backend.fresh({ alertPolicy: policy });
    store = db.store;
    receiver = await startReceiver();
    clock = t0;
    seq = 0;
    hostId = (await store.enrollAgent(await store.createEnrollSecret(now()), 'web-7', now()))!.agentId;
  });
  afterEach(async () => {
    await db.drop();
    await receiver.close();
  });

  const hex = (n: number): string => n.toString(16).padStart(64, '0');
  const dropped = (p: string, severity: Finding['severity'] = 'high'): Finding => ({ kind: 'file-added', severity, path: p, after: 'b'.repeat(64) });

  /** One full report of everything the host holds now. */
  async function report(findings: Finding[]): Promise<void> {
    seq++;
    const frame: ReportFrame = {
      type: 'report',
      agentId: hostId,
      seq,
      prevHash: seq === 1 ? null : hex(seq - 1),
      hash: hex(seq),
      kind: 'full',
      report: {
        schema: REPORT_SCHEMA,
        image: { name: 'web', version: '42' },
        host: { hostname: 'web-7', root: '/' },
        scannedAt: now().toISOString(),
        summary: summarize(findings),
        stats: { files: 1, packages: 1, bytesHashed: 0, durationMs: 1 },
        findings,
        warnings: [],
      },
    };
    await store.ingestBatch([{ type: 'report', agentId: hostId, frame, receivedAt: now() }]);
  }

  async function addSink(id: string, minSeverity: 'low' | 'high' = 'low'): Promise<void> {
    await store.saveSink(parseAlertSink({ type: 'webhook', id, url: receiver.url(`/${id}`), secret: 'a-webhook-secret-of-some-length', minSeverity }, 'test sink'), now());
  }

  /** One round of the delivery loop: what was held and is due goes out, then what is queued. */
  async function deliveryRound(): Promise<Array<{ sink: string; action: string; findings: string[] }>> {
    const before = receiver.requests.length;
    await store.heldAlerts.release(now());
    await deliverDue({ queue: store.alertQueue, sinks: new Map((await store.listSinks()).map((s) => [s.id, s])), fetch, now });
    return receiver.requests.slice(before).map((r) => {
      const body = JSON.parse(r.body.toString('utf8'));
      return { sink: r.path.slice(1), action: body.alert.action, findings: body.alert.findings.map((f: { path?: string; name?: string }) => f.path ?? f.name) };
    });
  }

  describe('the throttle', () => {
    it('releases a held alert when its window opens, with no further report', async () => {
      await addSink('oncall');
      await report([dropped('/usr/local/bin/one')]);
      expect(await deliveryRound()).toEqual([{ sink: 'oncall', action: 'trigger', findings: ['/usr/local/bin/one'] }]);
      clock += 60_000;
      await report([dropped('/usr/local/bin/one'), dropped('/usr/local/bin/two')]);
      expect(await deliveryRound()).toEqual([]);
      const [held] = await store.heldAlerts.list(hostId);
      expect(held).toMatchObject({ hostId, state: 'held', until: new Date(t0 + WINDOW).toISOString(), changeSets: 1, findings: [{ path: '/usr/local/bin/two' }] });
      expect(held!.reason).toMatch(/throttle: 1 alert per 10 min/);

      clock = t0 + WINDOW - 1;
      expect(await deliveryRound()).toEqual([]);
      // No report comes: the window opening is enough.
      clock = t0 + WINDOW;
      expect(await deliveryRound()).toEqual([{ sink: 'oncall', action: 'trigger', findings: ['/usr/local/bin/two'] }]);
      expect(await store.heldAlerts.list(hostId)).toEqual([]);
    });

    it('does not count alerts no sink took: the first page after a sink is added goes out at once', async () => {
      await report([dropped('/usr/local/bin/a')]);
      await report([dropped('/usr/local/bin/a'), dropped('/usr/local/bin/b')]);
      await report([dropped('/usr/local/bin/a'), dropped('/usr/local/bin/b'), dropped('/usr/local/bin/c')]);
      const planned = await store.alertQueue.listDeliveries(hostId, 'planned');
      expect(planned.map((d) => [d.sinkId, d.reason, d.alert.findings.map((f) => f.path)])).toEqual([
        [null, 'no sink takes high alerts', ['/usr/local/bin/a']],
        [null, 'no sink takes high alerts', ['/usr/local/bin/b']],
        [null, 'no sink takes high alerts', ['/usr/local/bin/c']],
      ]);
      await addSink('oncall');
      clock += 60_000;
      await report([dropped('/usr/local/bin/a'), dropped('/usr/local/bin/b'), dropped('/usr/local/bin/c'), dropped('/usr/local/bin/d')]);
      expect(await deliveryRound()).toEqual([{ sink: 'oncall', action: 'trigger', findings: ['/usr/local/bin/d'] }]);
    });

    it('never holds back a critical change: it has a budget of its own', async () => {
      await addSink('oncall');
      await report([dropped('/usr/local/bin/one')]);
      await report([dropped('/usr/local/bin/one'), dropped('/usr/local/bin/two')]);
      expect((await deliveryRound()).map((a) => a.findings)).toEqual([['/usr/local/bin/one']]);
      clock += 5_000;
      await report([dropped('/usr/local/bin/one'), dropped('/usr/local/bin/two'), dropped('/usr/bin/passwd', 'critical')]);
      expect((await deliveryRound()).map((a) => a.findings)).toEqual([['/usr/bin/passwd']]);
      // The ordinary backlog still waits for its window.
      expect((await store.heldAlerts.list(hostId)).map((h) => h.findings.map((f) => f.path))).toEqual([['/usr/local/bin/two']]);
    });
  });

  describe('what a delivery says', () => {
    it('is decided when it is sent: a finding a suppress rule waived meanwhile is left out, one approved too', async () => {
      await addSink('oncall');
      await report([dropped('/usr/local/bin/one')]);
      await deliveryRound();
      await report([dropped('/usr/local/bin/one'), dropped('/usr/local/bin/two'), dropped('/opt/tool/x'), dropped('/srv/y')]);
      const rules = parseRuleSet({ schema: RULES_SCHEMA, rules: [{ id: 'opt-is-ours', match: { path: '/opt/tool' }, action: { type: 'suppress' } }] }, 'rules');
      await store.triage.saveRules({ set: rules, actor, now: now() });
      const y = (await store.listFindings(hostId, { state: 'open' }, now()))!.find((f) => f.path === '/srv/y')!;
      await store.triage.approve({ hostId, findingIds: [y.id], reason: 'deployed by hand, CHG-9', actor, now: now() });
      clock = t0 + WINDOW;
      const sent = await deliveryRound();
      expect(sent).toEqual([{ sink: 'oncall', action: 'trigger', findings: ['/usr/local/bin/two'] }]);
      // The delivery on record is what was sent.
      const delivered = await store.alertQueue.listDeliveries(hostId, 'delivered');
      expect(delivered.at(-1)!.alert.counts.findings).toBe(1);
    });

    it('is withdrawn when nothing of it needs anyone when its turn comes', async () => {
      await addSink('oncall');
      await report([dropped('/usr/local/bin/one')]);
      await deliveryRound();
      clock += WINDOW;
      receiver.script.push(500);
      await report([dropped('/usr/local/bin/one'), dropped('/usr/local/bin/two')]);
      expect(await deliveryRound()).toHaveLength(1); // answered 500: retried later
      const two = (await store.listFindings(hostId, { state: 'open' }, now()))!.find((f) => f.path === '/usr/local/bin/two')!;
      await store.triage.approve({ hostId, findingIds: [two.id], reason: 'expected', actor, now: now() });
      clock += 60_000;
      expect(await deliveryRound()).toEqual([]);
      const d = (await store.alertQueue.listDeliveries(hostId)).at(-1)!;
      expect(d.state).toBe('withdrawn');
      expect((await store.alertQueue.listAttempts(d.id)).map((a) => [a.result, a.error])).toEqual([
        ['retry', 'answered 500: error 500'],
        ['withdrawn', expect.stringMatching(/^not sent: each of its findings was resolved, approved or waived/)],
      ]);
    });

    it('withdraws a trigger still waiting when its host is cattle again, and sends no resolve for it', async () => {
      await addSink('oncall');
      receiver.script.push(500);
      await report([dropped('/usr/local/bin/one')]);
      await deliveryRound();
      await report([]);
      expect((await store.alertQueue.listDeliveries(hostId)).map((d) => [d.action, d.state, d.reason])).toEqual([
        ['trigger', 'withdrawn', 'resolved before it was sent'],
        ['resolve', 'planned', 'no sink got its trigger'],
      ]);
    });

    it('sends a resolve only to the sinks that got the trigger', async () => {
      await addSink('oncall');
      await report([dropped('/usr/local/bin/one')]);
      await deliveryRound();
      await addSink('late');
      clock += 60_000;
      await report([]);
      expect(await deliveryRound()).toEqual([{ sink: 'oncall', action: 'resolve', findings: [] }]);
    });
  });

  describe('GET /api/v1/alerts', () => {
    it('shows planned, held, delivered and given-up alerts, and filters by state', async () => {
      const app = createApp({ store, clock: now, metrics: createMetrics() });
      const token = await store.createApiToken('auditor', now());
      const get = async (q: string) => (await app.request(`/api/v1/alerts${q}`, { headers: { authorization: `Bearer ${token}` } })).json() as Promise<any>;
      await addSink('pager', 'high');
      receiver.script.push(400);
      await report([dropped('/usr/local/bin/one', 'medium')]);
      await report([dropped('/usr/local/bin/one', 'medium'), dropped('/usr/local/bin/two')]);
      await report([dropped('/usr/local/bin/one', 'medium'), dropped('/usr/local/bin/two'), dropped('/usr/local/bin/three')]);
      await deliveryRound();
      const all = await get(`?host=${hostId}`);
      expect(all.deliveries.map((d: { state: string; reason: string | null }) => [d.state, d.reason])).toEqual([
        ['planned', 'no sink takes medium alerts'],
        ['gave-up', null],
      ]);
      expect(all.held).toMatchObject([{ hostId, state: 'held', until: new Date(t0 + WINDOW).toISOString() }]);
      expect((await get('?state=held')).deliveries).toEqual([]);
      expect((await get('?state=planned')).held).toEqual([]);
      expect((await get('?state=planned')).deliveries).toHaveLength(1);
      // Pages of deliveries in the same order, the held ones beside every page; the state filter holds across pages.
      const first = await get(`?host=${hostId}&limit=1`);
      expect(first.deliveries.map((d: { state: string }) => d.state)).toEqual(['planned']);
      expect(first.held).toHaveLength(1);
      const second = await get(`?host=${hostId}&limit=1&cursor=${first.next}`);
      expect([second.deliveries.map((d: { state: string }) => d.state), second.next]).toEqual([['gave-up'], null]);
      expect(second.deliveries[0].attemptLog).toHaveLength(all.deliveries[1].attemptLog.length);
      expect((await get(`?host=${hostId}&state=gave-up&limit=1`)).deliveries.map((d: { state: string }) => d.state)).toEqual(['gave-up']);
      expect((await get('?state=held&limit=1')).next).toBeNull();
      clock = t0 + WINDOW;
      await deliveryRound();
      expect((await get('?state=delivered')).deliveries.map((d: any) => d.alert.findings.map((f: any) => f.path))).toEqual([['/usr/local/bin/three']]);
      const bad = await app.request('/api/v1/alerts?state=lost', { headers: { authorization: `Bearer ${token}` } });
      expect(bad.status).toBe(400);
    });
  });
});
