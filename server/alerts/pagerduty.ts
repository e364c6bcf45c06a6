import type { PagerdutySink } from '../../shared/alerts.js';
import type { Alert } from './alert.js';
import { postJson } from './http.js';
import type { FetchLike, HttpRequest, SendOutcome } from './http.js';

// PagerDuty knows four severities; low drift is a warning there, not info (info never pages).
const PD_SEVERITY = { critical: 'critical', high: 'error', medium: 'warning', low: 'warning' } as const;

/**
 * Events API v2. A trigger opens (or adds to) the incident of its dedup key, which is stable per
 * host and change set, so a retried or repeated trigger never opens a second incident; a resolve
 * with the same key closes it.
 */
export function buildPagerdutyEvent(sink: PagerdutySink, alert: Alert): Record<string, unknown> {
  if (alert.action === 'resolve') return { routing_key: sink.routingKey, event_action: 'resolve', dedup_key: alert.dedupKey };
  return {
    routing_key: sink.routingKey,
    event_action: 'trigger',
    dedup_key: alert.dedupKey,
    payload: {
      summary: alert.title.length > 1024 ? `${alert.title.slice(0, 1023)}…` : alert.title,
      source: alert.host.hostname,
      severity: PD_SEVERITY[alert.severity],
      timestamp: alert.at,
      component: alert.image.name,
      class: 'drift',
      ...(alert.host.labels.team === undefined ? {} : { group: alert.host.labels.team }),
      custom_details: {
        host_id: alert.host.id,
        image: `${alert.image.name} ${alert.image.version}`,
        labels: alert.host.labels,
        counts: alert.counts,
        findings: alert.findings,
      },
    },
    client: 'Quicksand',
    ...(alert.link === undefined ? {} : { client_url: alert.link, links: [{ href: alert.link, text: 'Host in Quicksand' }] }),
  };
}

export function buildPagerdutyRequest(sink: PagerdutySink, alert: Alert): HttpRequest {
  return { url: sink.url, headers: { 'content-type': 'application/json', 'user-agent': 'quicksand-server' }, body: JSON.stringify(buildPagerdutyEvent(sink, alert)) };
}

export function sendPagerduty(fetchFn: FetchLike, sink: PagerdutySink, alert: Alert): Promise<SendOutcome> {
  return postJson(fetchFn, buildPagerdutyRequest(sink, alert), sink.timeoutMs);
}
