import { createHmac, timingSafeEqual } from 'node:crypto';
import { ALERT_SCHEMA } from '../../shared/alerts.js';
import type { WebhookSink } from '../../shared/alerts.js';
import type { Alert } from './alert.js';
import { postJson } from './http.js';
import type { FetchLike, HttpRequest, SendOutcome } from './http.js';

export const SIGNATURE_HEADER = 'X-Quicksand-Signature';
export const TIMESTAMP_HEADER = 'X-Quicksand-Timestamp';
export const DELIVERY_HEADER = 'X-Quicksand-Delivery';

/** `sha256=<hex HMAC-SHA256 of the body under the sink's secret>`. */
export function signBody(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** For receivers (and tests): checks a signature header in constant time. */
export function verifySignature(secret: string, body: string | Buffer, header: string | undefined): boolean {
  if (header === undefined) return false;
  const expected = Buffer.from(signBody(secret, body));
  const got = Buffer.from(header);
  return got.length === expected.length && timingSafeEqual(got, expected);
}

/**
 * The generic webhook: the alert as JSON. The timestamp goes in a header and, as `sentAt`, in
 * the signed body too, so a receiver can refuse replays of an old delivery; `delivery` is the
 * same for every retry of one delivery, so a receiver can drop duplicates.
 */
export function buildWebhookRequest(sink: WebhookSink, alert: Alert, deliveryId: string, now: Date): HttpRequest {
  const body = JSON.stringify({ schema: ALERT_SCHEMA, delivery: deliveryId, sentAt: now.toISOString(), alert });
  return {
    url: sink.url,
    headers: {
      'content-type': 'application/json',
      'user-agent': 'quicksand-server',
      [DELIVERY_HEADER]: deliveryId,
      [TIMESTAMP_HEADER]: String(Math.floor(now.getTime() / 1000)),
      [SIGNATURE_HEADER]: signBody(sink.secret, body),
    },
    body,
  };
}

export function sendWebhook(fetchFn: FetchLike, sink: WebhookSink, alert: Alert, deliveryId: string, now: Date): Promise<SendOutcome> {
  return postJson(fetchFn, buildWebhookRequest(sink, alert, deliveryId, now), sink.timeoutMs);
}
