import type { SlackSink } from '../../shared/alerts.js';
import { describeFinding } from './alert.js';
import type { Alert } from './alert.js';
import { postJson } from './http.js';
import type { FetchLike, HttpRequest, SendOutcome } from './http.js';

const EMOJI = { critical: ':rotating_light:', high: ':red_circle:', medium: ':large_orange_circle:', low: ':large_yellow_circle:' } as const;
const SHOWN = 10;

// Slack refuses a section whose text is longer than 3000 characters (the whole message fails).
const SECTION_MAX = 3000;
function clip(text: string): string {
  return text.length <= SECTION_MAX ? text : `${text.slice(0, SECTION_MAX - 2)} …`;
}

/** Slack's `mrkdwn` treats these three as markup; everything else is literal. */
function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The incoming-webhook body: `text` for notifications and old clients, `blocks` for the channel. */
export function buildSlackPayload(alert: Alert): { text: string; blocks: unknown[] } {
  if (alert.action === 'resolve') {
    const text = `:white_check_mark: Resolved: ${alert.title}`;
    return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text: escape(text) } }] };
  }
  const text = `${EMOJI[alert.severity]} [${alert.severity.toUpperCase()}] ${alert.title}`;
  const lines = alert.findings.slice(0, SHOWN).map((f) => `• \`${f.severity}\` ${escape(describeFinding(f))}`);
  if (alert.counts.findings > SHOWN) lines.push(`… and ${alert.counts.findings - SHOWN} more`);
  const labels = Object.entries(alert.host.labels).map(([k, v]) => `${k}=${v}`).join(', ');
  const blocks: unknown[] = [
    { type: 'section', text: { type: 'mrkdwn', text: clip(`*${escape(text)}*`) } },
    {
      type: 'section',
      fields: [
        { type: 'mrkdwn', text: `*Host*\n${escape(alert.host.hostname)}` },
        { type: 'mrkdwn', text: `*Image*\n${escape(`${alert.image.name} ${alert.image.version}`)}` },
        { type: 'mrkdwn', text: `*Severity*\n${alert.severity}` },
        { type: 'mrkdwn', text: `*Changes*\n${alert.counts.findings} (${alert.counts.files} files)` },
      ],
    },
    { type: 'section', text: { type: 'mrkdwn', text: clip(lines.join('\n') || '(no detail)') } },
  ];
  const context = [labels && `labels: ${escape(labels)}`, alert.link && `<${alert.link}|open in Quicksand>`].filter(Boolean);
  if (context.length > 0) blocks.push({ type: 'context', elements: context.map((t) => ({ type: 'mrkdwn', text: t })) });
  return { text, blocks };
}

export function buildSlackRequest(sink: SlackSink, alert: Alert): HttpRequest {
  return { url: sink.url, headers: { 'content-type': 'application/json', 'user-agent': 'quicksand-server' }, body: JSON.stringify(buildSlackPayload(alert)) };
}

export function sendSlack(fetchFn: FetchLike, sink: SlackSink, alert: Alert): Promise<SendOutcome> {
  return postJson(fetchFn, buildSlackRequest(sink, alert), sink.timeoutMs);
}
