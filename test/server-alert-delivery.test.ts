// Alert deliveries to real HTTP receivers on loopback, through the queue port, with the clock
// passed in so the retry schedule is followed without waiting for it.
import { createHmac, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAlertSink } from '../shared/alerts.js';
import type { AlertSink } from '../shared/alerts.js';
import { emptyRuleSet } from '../shared/rules.js';
import type { Finding } from '../shared/report.js';
import { applyRules, compileRules } from '../server/rules.js';
import { emptyHostAlertMemory, planAlerts } from '../server/alerts/policy.js';
import type { RetrySchedule } from '../server/alerts/policy.js';
import { deliverDue, planDeliveries } from '../server/alerts/queue.js';
import { DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifySignature } from '../server/alerts/webhook.js';
import type { Alert } from '../server/alerts/alert.js';
import { createInMemoryAlertQueueForTests } from './helpers/in-memory-alert-queue.js';
import { startReceiver } from './helpers/http-receiver.js';
import type { Receiver } from './helpers/http-receiver.js';

const SECRET = 'a-webhook-secret-of-some-length';
const host = { id: 'h-1', hostname: 'web-7', labels: { env: 'prod' } };
const image = { name: 'web-golden', version: '42' };
const t0 = new Date('2026-11-29T10:00:00Z');
const retry: RetrySchedule = { baseMs: 1000, factor: 2, maxDelayMs: 60_000, maxAttempts: 3 };

let receiver: Receiver;
beforeEach(async () => {
  receiver = await startReceiver();
});
afterEach(async () => {
  await receiver.close();
});

function installAlert(files: number): Alert {
  const finding: Finding = {
    kind: 'package-added',
    severity: 'high',
    ecosystem: 'dpkg',
    name: 'netcat-openbsd',
    after: '1.219-1',
    changes: Array.from({ length: files }, (_, i) => ({ kind: 'file-added' as const, severity: 'high' as const, path: `/usr/share/doc/nc/f${i}` })),
  };
  const evaluated = applyRules([finding], { host, image, at: t0 }, compileRules(emptyRuleSet()));
  const { alerts } = planAlerts({ host, image, findings: evaluated, hostStatus: 'pet', now: t0, memory: emptyHostAlertMemory() });
  expect(alerts).toHaveLength(1);
  return alerts[0]!;
}

function webhook(over: Record<string, unknown> = {}): AlertSink {
  return parseAlertSink({ type: 'webhook', id: 'hook', url: receiver.url('/quicksand'), secret: SECRET, ...over }, 'test sink');
}

async function queued(alert: Alert, sinks: AlertSink[]) {
  const queue = createInMemoryAlertQueueForTests();
  await queue.enqueue(planDeliveries([alert], sinks, t0, randomUUID));
  return queue;
}

describe('webhook delivery', () => {
  it('posts the alert as JSON with an HMAC-SHA256 signature the receiver can verify', async () => {
    const sink = webhook();
    const alert = installAlert(250);
    const queue = await queued(alert, [sink]);
    const attempts = await deliverDue({ queue, sinks: new Map([[sink.id, sink]]), fetch, now: () => t0, retry });
    expect(attempts.map((a) => [a.result, a.outcome.ok])).toEqual([['delivered', true]]);

    expect(receiver.requests).toHaveLength(1);
    const req = receiver.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/quicksand');
    expect(req.headers['content-type']).toBe('application/json');
    // Verified the way a receiver would, independently of the sender's own helper.
    const expected = `sha256=${createHmac('sha256', SECRET).update(req.body).digest('hex')}`;
    expect(req.headers[SIGNATURE_HEADER.toLowerCase()]).toBe(expected);
    expect(verifySignature(SECRET, req.body, req.headers[SIGNATURE_HEADER.toLowerCase()] as string)).toBe(true);
    expect(verifySignature('another-secret-entirely', req.body, expected)).toBe(false);
    expect(verifySignature(SECRET, Buffer.concat([req.body, Buffer.from(' ')]), expected)).toBe(false);

    const body = JSON.parse(req.body.toString('utf8'));
    expect(body).toMatchObject({ schema: 'quicksand.alert/v1', delivery: queue.attempts[0]!.deliveryId, sentAt: t0.toISOString() });
    expect(req.headers[DELIVERY_HEADER.toLowerCase()]).toBe(body.delivery);
    expect(req.headers[TIMESTAMP_HEADER.toLowerCase()]).toBe(String(t0.getTime() / 1000));
    expect(body.alert).toMatchObject({ action: 'trigger', dedupKey: alert.dedupKey, severity: 'high', counts: { findings: 1, files: 250 } });
  });

  it('retries a receiver that answers 500 on the schedule and records every attempt', async () => {
    receiver.script.push(500, 500);
    const sink = webhook();
    const queue = await queued(installAlert(3), [sink]);
    const sinks = new Map([[sink.id, sink]]);
    let now = t0.getTime();
    const deliver = () => deliverDue({ queue, sinks, fetch, now: () => new Date(now), retry });

    expect((await deliver()).map((a) => a.result)).toEqual(['retry']);
    now += 999; // not due yet
    expect(await deliver()).toEqual([]);
    now += 1; // first retry after baseMs
    expect((await deliver()).map((a) => a.result)).toEqual(['retry']);
    now += 2000; // second after baseMs * factor
    expect((await deliver()).map((a) => a.result)).toEqual(['delivered']);

    expect(queue.attempts.map((a) => [a.attempt, a.result, a.outcome.ok ? a.outcome.status : a.outcome.status, a.nextAttemptAt ?? null])).toEqual([
      [1, 'retry', 500, t0.getTime() + 1000],
      [2, 'retry', 500, t0.getTime() + 1000 + 2000],
      [3, 'delivered', 200, null],
    ]);
    expect(queue.attempts[0]!.outcome).toMatchObject({ ok: false, error: 'answered 500: error 500', retryable: true });
    // Every retry is the same delivery: a receiver can drop the duplicates.
    expect(new Set(receiver.requests.map((r) => r.headers[DELIVERY_HEADER.toLowerCase()])).size).toBe(1);
    expect(receiver.requests).toHaveLength(3);
    expect([...queue.rows.values()].map((r) => r.status)).toEqual(['delivered']);
  });

  it('counts a receiver that never answers as a failed attempt, and gives up after the last', async () => {
    receiver.script.push('hang', 'hang', 'hang');
    const sink = webhook({ timeoutMs: 200 });
    const queue = await queued(installAlert(3), [sink]);
    const sinks = new Map([[sink.id, sink]]);
    let now = t0.getTime();
    for (const step of [0, 1000, 2000]) {
      now += step;
      await deliverDue({ queue, sinks, fetch, now: () => new Date(now), retry });
    }
    expect(queue.attempts.map((a) => [a.attempt, a.result, a.outcome.ok ? '' : a.outcome.error])).toEqual([
      [1, 'retry', 'no answer within 200 ms'],
      [2, 'retry', 'no answer within 200 ms'],
      [3, 'gave-up', 'no answer within 200 ms'],
    ]);
    expect([...queue.rows.values()].map((r) => r.status)).toEqual(['gave-up']);
    // Given up is final: nothing is sent again.
    now += 3_600_000;
    expect(await deliverDue({ queue, sinks, fetch, now: () => new Date(now), retry })).toEqual([]);
  });

  it('gives up at once on an answer that retrying cannot fix, and on a redirect', async () => {
    receiver.script.push(400, 302);
    const sink = webhook();
    const queue = createInMemoryAlertQueueForTests();
    await queue.enqueue(planDeliveries([installAlert(1)], [sink], t0, randomUUID));
    await deliverDue({ queue, sinks: new Map([[sink.id, sink]]), fetch, now: () => t0, retry });
    await queue.enqueue(planDeliveries([installAlert(2)], [sink], t0, randomUUID));
    await deliverDue({ queue, sinks: new Map([[sink.id, sink]]), fetch, now: () => t0, retry });
    expect(queue.attempts.map((a) => [a.result, a.outcome.ok ? '' : a.outcome.error])).toEqual([
      ['gave-up', 'answered 400: error 400'],
      ['gave-up', expect.stringMatching(/^answered a redirect \(302\)/)],
    ]);
  });

  it('records a delivery whose sink was removed as given up, without sending it', async () => {
    const sink = webhook();
    const queue = await queued(installAlert(1), [sink]);
    const attempts = await deliverDue({ queue, sinks: new Map(), fetch, now: () => t0, retry });
    expect(attempts.map((a) => [a.result, a.outcome.ok ? '' : a.outcome.error])).toEqual([['gave-up', 'sink hook no longer exists']]);
    expect(receiver.requests).toEqual([]);
  });

  it('says which sink could not be reached without leaking the webhook path', async () => {
    const closed = await startReceiver();
    const url = closed.url('/secret-token-path');
    await closed.close();
    const sink = webhook({ url });
    const queue = await queued(installAlert(1), [sink]);
    const [a] = await deliverDue({ queue, sinks: new Map([[sink.id, sink]]), fetch, now: () => t0, retry });
    expect(a!.result).toBe('retry');
    expect(a!.outcome.ok ? '' : a!.outcome.error).toMatch(/^cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED$/);
  });
});

describe('PagerDuty delivery', () => {
  it('sends an Events v2 trigger and later a resolve with the same dedup key', async () => {
    receiver.script.push(202, 202);
    const sink = parseAlertSink({ type: 'pagerduty', id: 'pd', routingKey: 'R0utingKey0123456789abcdefABCDEF', url: receiver.url('/v2/enqueue') }, 'test sink');
    const trigger = installAlert(40);
    const first = planAlerts({
      host,
      image,
      findings: applyRules([{ kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: 'netcat-openbsd', after: '1.219-1' }], { host, image, at: t0 }, compileRules(emptyRuleSet())),
      hostStatus: 'pet',
      now: t0,
      memory: emptyHostAlertMemory(),
    });
    const resolve = planAlerts({ host, image, findings: [], hostStatus: 'cattle', now: t0, memory: first.memory }).alerts;
    const queue = createInMemoryAlertQueueForTests();
    await queue.enqueue(planDeliveries([trigger, ...resolve], [sink], t0, randomUUID));
    await deliverDue({ queue, sinks: new Map([[sink.id, sink]]), fetch, now: () => t0, retry });
    const events = receiver.requests.map((r) => JSON.parse(r.body.toString('utf8')));
    expect(events.map((e) => [e.event_action, e.dedup_key])).toEqual(
      expect.arrayContaining([
        ['trigger', trigger.dedupKey],
        ['resolve', trigger.dedupKey],
      ]),
    );
    expect(events.find((e) => e.event_action === 'trigger').payload).toMatchObject({ severity: 'error', source: 'web-7', summary: expect.stringContaining('netcat-openbsd') });
    expect(queue.attempts.map((a) => a.result)).toEqual(['delivered', 'delivered']);
  });
});
