// Alert delivery through a durable queue. The queue is a port: the server's store implements it
// (a table of deliveries and one of attempts), so an alert survives a restart and every attempt
// is on record as evidence that alerts were handled.
import type { AlertSink } from '../../shared/alerts.js';
import type { Alert } from './alert.js';
import type { FetchLike, SendOutcome } from './http.js';
import { sendPagerduty } from './pagerduty.js';
import { DEFAULT_ALERT_POLICY, nextRetryDelay, sinksFor } from './policy.js';
import type { RetrySchedule } from './policy.js';
import { sendSlack } from './slack.js';
import { sendWebhook } from './webhook.js';

export interface NewDelivery {
  id: string;
  sinkId: string;
  alert: Alert;
  /** Epoch ms from which it may be sent. */
  notBefore: number;
  /** Identities of the findings a trigger was made from: its content is made again when sent. */
  basis?: string[];
}

export interface QueuedDelivery {
  id: string;
  sinkId: string;
  alert: Alert;
  /** Attempts made so far. */
  attempts: number;
  nextAttemptAt: number;
  basis?: string[];
}

/** `withdrawn`: not sent, nothing of it needed anyone any more when its turn came. */
export type DeliveryResult = 'delivered' | 'retry' | 'gave-up' | 'withdrawn';

export interface DeliveryAttempt {
  deliveryId: string;
  sinkId: string;
  /** 1 for the first attempt. */
  attempt: number;
  at: number;
  outcome: SendOutcome;
  result: DeliveryResult;
  /** Set when `result` is `retry`. */
  nextAttemptAt?: number;
  /** The alert as it was sent (composed at send time), when it differs from the queued one. */
  sent?: Alert;
}

/** A claimed delivery whose loop died comes back after this long (a send times out far sooner). */
export const CLAIM_LEASE_MS = 5 * 60_000;

/** What the server's store implements. */
export interface AlertQueueStore {
  /** `now`: when they were queued (default: the wall clock). */
  enqueue(deliveries: readonly NewDelivery[], now?: Date): Promise<void>;
  /**
   * Pending deliveries whose `nextAttemptAt` has come, oldest first, at most `limit`; they are
   * claimed until `record` is called for them (or CLAIM_LEASE_MS passed), so two delivery loops
   * never send one twice.
   */
  claimDue(now: number, limit: number): Promise<QueuedDelivery[]>;
  /** Appends the attempt to the log and moves the delivery to its new state, in one transaction. */
  record(attempt: DeliveryAttempt): Promise<void>;
  /**
   * The alert as it should go out now, from the current triage state of its findings; null when
   * none of them needs anyone any more. Absent: sent as queued.
   */
  current?(delivery: QueuedDelivery, now: Date): Promise<Alert | null>;
}

/** One delivery per alert and sink that wants it. Pure but for `newId`. */
export function planDeliveries(alerts: readonly Alert[], sinks: readonly AlertSink[], now: Date, newId: () => string, basis?: ReadonlyMap<string, string[]>): NewDelivery[] {
  return alerts.flatMap((alert) =>
    sinksFor(alert, sinks).map((sink) => {
      const b = alert.action === 'trigger' ? basis?.get(alert.dedupKey) : undefined;
      return { id: newId(), sinkId: sink.id, alert, notBefore: now.getTime(), ...(b === undefined ? {} : { basis: b }) };
    }),
  );
}

/** What an attempt's outcome means for its delivery. Pure. */
export function settleAttempt(attempt: number, outcome: SendOutcome, at: number, retry: RetrySchedule): { result: DeliveryResult; nextAttemptAt?: number } {
  if (outcome.ok) return { result: 'delivered' };
  const delay = outcome.retryable ? nextRetryDelay(attempt, retry) : null;
  return delay === null ? { result: 'gave-up' } : { result: 'retry', nextAttemptAt: at + delay };
}

/** Sends one alert to one sink; the registry of sink types is this switch. */
export function sendToSink(fetchFn: FetchLike, sink: AlertSink, alert: Alert, deliveryId: string, now: Date): Promise<SendOutcome> {
  switch (sink.type) {
    case 'webhook':
      return sendWebhook(fetchFn, sink, alert, deliveryId, now);
    case 'slack':
      return sendSlack(fetchFn, sink, alert);
    case 'pagerduty':
      return sendPagerduty(fetchFn, sink, alert);
  }
}

export interface DeliverDeps {
  queue: AlertQueueStore;
  /** Sinks by id as configured now; a delivery whose sink was removed is given up. */
  sinks: ReadonlyMap<string, AlertSink>;
  fetch: FetchLike;
  now: () => Date;
  retry?: RetrySchedule;
  limit?: number;
}

/**
 * Sends every delivery that is due, concurrently (a sink that times out does not hold up the
 * others), and records each attempt through the port. The server runs it on a timer, apart
 * from ingest: a dead sink never slows the reports down.
 */
export async function deliverDue(deps: DeliverDeps): Promise<DeliveryAttempt[]> {
  const retry = deps.retry ?? DEFAULT_ALERT_POLICY.retry;
  const due = await deps.queue.claimDue(deps.now().getTime(), deps.limit ?? 50);
  return Promise.all(
    due.map(async (d): Promise<DeliveryAttempt> => {
      const attempt = d.attempts + 1;
      const sink = deps.sinks.get(d.sinkId);
      // Decided now, not when it was queued: what was waived or approved meanwhile is left out.
      const alert = deps.queue.current ? await deps.queue.current(d, deps.now()) : d.alert;
      if (alert === null) {
        const outcome: SendOutcome = { ok: false, error: 'not sent: each of its findings was resolved, approved or waived before its turn came', retryable: false };
        const record: DeliveryAttempt = { deliveryId: d.id, sinkId: d.sinkId, attempt, at: deps.now().getTime(), outcome, result: 'withdrawn' };
        await deps.queue.record(record);
        return record;
      }
      const outcome: SendOutcome = sink
        ? await sendToSink(deps.fetch, sink, alert, d.id, deps.now())
        : { ok: false, error: `sink ${d.sinkId} no longer exists`, retryable: false };
      const at = deps.now().getTime();
      const record: DeliveryAttempt = { deliveryId: d.id, sinkId: d.sinkId, attempt, at, outcome, ...settleAttempt(attempt, outcome, at, retry), ...(alert === d.alert ? {} : { sent: alert }) };
      await deps.queue.record(record);
      return record;
    }),
  );
}
