import { z } from 'zod';
import { SEVERITIES } from './findings.js';
import { QuicksandError } from './errors.js';
import { formatIssues } from './schema-errors.js';
import { boundedString } from './bounds.js';

export const ALERT_SCHEMA = 'quicksand.alert/v1';

const httpUrl = z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).max(2048);
const httpsUrl = z.url({ protocol: /^https$/, error: 'expected an https:// URL' }).max(2048);

const common = {
  id: boundedString(200).min(1),
  name: boundedString(200).optional(),
  // Alerts less severe than this do not go to this sink (a pager wants less than a chat room).
  minSeverity: z.enum(SEVERITIES).exclude(['info']).default('low'),
  timeoutMs: z.number().int().min(100).max(60_000).default(10_000),
};

/** A generic webhook: JSON body, signed with HMAC-SHA256 under `secret`. */
export const webhookSinkSchema = z.strictObject({
  type: z.literal('webhook'),
  ...common,
  url: httpUrl,
  secret: boundedString(1000).min(16, 'expected a secret of at least 16 characters'),
});

/** A Slack incoming webhook (its URL is the credential). */
export const slackSinkSchema = z.strictObject({
  type: z.literal('slack'),
  ...common,
  url: httpsUrl,
});

export const PAGERDUTY_EVENTS_URL = 'https://events.pagerduty.com/v2/enqueue';

/** PagerDuty Events API v2; `routingKey` is the integration key of a service. */
export const pagerdutySinkSchema = z.strictObject({
  type: z.literal('pagerduty'),
  ...common,
  minSeverity: z.enum(SEVERITIES).exclude(['info']).default('high'),
  routingKey: z.string().regex(/^[A-Za-z0-9]{32}$/, 'expected a 32-character integration key'),
  url: httpUrl.default(PAGERDUTY_EVENTS_URL),
});

export const alertSinkSchema = z.discriminatedUnion('type', [webhookSinkSchema, slackSinkSchema, pagerdutySinkSchema]);
export type AlertSink = z.infer<typeof alertSinkSchema>;
export type WebhookSink = z.infer<typeof webhookSinkSchema>;
export type SlackSink = z.infer<typeof slackSinkSchema>;
export type PagerdutySink = z.infer<typeof pagerdutySinkSchema>;

/** Validates an untrusted sink configuration (an API request body). */
export function parseAlertSink(value: unknown, source: string): AlertSink {
  const result = alertSinkSchema.safeParse(value);
  if (!result.success) throw new QuicksandError('ALERT_SINK_INVALID', `${source} is not a valid alert sink:\n${formatIssues(result.error)}`);
  // Checked here, not in the schema, so rows stored before still load (and fail to deliver, saying why).
  if (hasUserInfo(result.data.url)) {
    throw new QuicksandError('ALERT_SINK_INVALID', `${source} is not a valid alert sink:\nurl: a URL with user:password@ is never sent (fetch refuses it); put the credential in the sink's secret`);
  }
  return result.data;
}

/** True when a URL carries a user name or password (`https://user:pass@host/`). */
export function hasUserInfo(url: string): boolean {
  try {
    const u = new URL(url);
    return u.username !== '' || u.password !== '';
  } catch {
    return false;
  }
}

/**
 * A text with every URL in it cut to its origin, user-info dropped: error texts and logs may
 * quote what a fetch said, and a sink URL's user-info, path or query is often its credential.
 */
export function scrubUrls(text: string): string {
  return text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi, (url) => {
    try {
      const u = new URL(url);
      return u.host === '' ? '(url)' : `${u.protocol}//${u.host}/…`;
    } catch {
      return '(url)';
    }
  });
}
