// Alert sinks as people change and see them (API and console alike): saved and removed with an
// audit entry, shown with their credentials redacted, tested with one alert; and a page of the
// alert deliveries with their attempts and what the throttle holds.
import type { AlertsQuery } from '../../shared/api.js';
import { scrubUrls } from '../../shared/alerts.js';
import type { AlertSink } from '../../shared/alerts.js';
import { QuicksandError } from '../../shared/errors.js';
import type { Alert } from '../alerts/alert.js';
import type { FetchLike } from '../alerts/http.js';
import { sendToSink } from '../alerts/queue.js';
import type { Actor, AttemptRow, DeliveryRow, HeldAlerts, Store } from '../store/types.js';

/** A sink as it is shown: the credential (secret, routing key, Slack URL) never leaves. */
export function redactSink(sink: AlertSink): Record<string, unknown> {
  switch (sink.type) {
    case 'webhook':
      return { ...sink, url: withoutUserInfo(sink.url), secret: '(set)' };
    case 'pagerduty':
      return { ...sink, url: withoutUserInfo(sink.url), routingKey: `…${sink.routingKey.slice(-4)}` };
    case 'slack':
      return { ...sink, url: `${new URL(sink.url).origin}/…` };
  }
}

/** A URL an older server accepted with user:password@, shown without them. */
function withoutUserInfo(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  return u.href;
}

/** Saves a parsed sink (true: it replaced one of the same id), audited. */
export async function saveSinkAudited(store: Store, sink: AlertSink, actor: Actor, now: Date): Promise<boolean> {
  const replaced = await store.saveSink(sink, now);
  await store.triage.audit({ actor, action: replaced ? 'sink-update' : 'sink-create', target: `sink:${sink.id}`, detail: { type: sink.type, minSeverity: sink.minSeverity }, now });
  return replaced;
}

export async function deleteSinkAudited(store: Store, id: string, actor: Actor, now: Date): Promise<void> {
  if (!(await store.deleteSink(id))) throw new QuicksandError('NOT_FOUND', `sink ${id} is not configured`);
  await store.triage.audit({ actor, action: 'sink-delete', target: `sink:${id}`, now });
}

/** Sends one test alert to a configured sink now (not queued, not retried); the outcome is audited. */
export async function testSinkAudited(store: Store, fetchFn: FetchLike, id: string, actor: Actor, now: Date): Promise<{ ok: boolean; text: string }> {
  const sink = (await store.listSinks()).find((s) => s.id === id);
  if (sink === undefined) throw new QuicksandError('NOT_FOUND', `sink ${id} is not configured`);
  const alert: Alert = {
    action: 'trigger',
    dedupKey: `quicksand-test-${id}-${now.getTime()}`,
    host: { id: 'quicksand-test', hostname: 'quicksand-test', labels: {} },
    image: { name: 'quicksand-test', version: '0' },
    severity: 'low',
    title: `Quicksand test alert to sink ${id}: no host changed`,
    findings: [],
    counts: { findings: 0, files: 0 },
    at: now.toISOString(),
  };
  const outcome = await sendToSink(fetchFn, sink, alert, `test-${now.getTime()}`, now);
  const text = outcome.ok ? `delivered (HTTP ${outcome.status})` : `not delivered: ${scrubUrls(outcome.error)}`;
  await store.triage.audit({ actor, action: 'sink-test', target: `sink:${id}`, detail: { ok: outcome.ok, result: text }, now });
  return { ok: outcome.ok, text };
}

export interface AlertsPage {
  deliveries: Array<DeliveryRow & { attemptLog: AttemptRow[] }>;
  held: HeldAlerts[];
  next: string | null;
}

/** One page of alert deliveries (oldest first) with each one's attempts, and what the throttle holds. */
export async function alertsPage(store: Store, query: AlertsQuery): Promise<AlertsPage> {
  const { state } = query;
  const [{ deliveries, next }, held] = await Promise.all([
    state === 'held' ? { deliveries: [], next: null } : store.alertQueue.pageDeliveries({ hostId: query.host, state, limit: query.limit, after: query.cursor }),
    // What the throttle holds is no delivery yet: listed beside them (on every page), with why and until when.
    state === undefined || state === 'held' ? store.heldAlerts.list(query.host) : [],
  ]);
  const attempts = await store.alertQueue.attemptsOf(deliveries.map((d) => d.id));
  return { deliveries: deliveries.map((d) => ({ ...d, attemptLog: attempts.get(d.id) ?? [] })), held, next };
}
