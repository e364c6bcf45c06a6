// Alert sinks and the alerts delivered through them.
import type { Hono } from 'hono';
import { OPERATIONS } from './openapi.js';
import { parseAlertSink } from '../../shared/alerts.js';
import type { AlertSink } from '../../shared/alerts.js';
import { QuicksandError } from '../../shared/errors.js';
import { actorOf, jsonBody, parseWith, requireRole } from './context.js';
import type { AppDeps, Env } from './context.js';

/** A sink as the API shows it: the credential (secret, routing key, Slack URL) never leaves. */
function redactSink(sink: AlertSink): Record<string, unknown> {
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

/** /api/v1/sinks..., GET /api/v1/alerts. */
export function sinkRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  // Alert sinks: admin only (they hold credentials of other systems).
  app.post('/api/v1/sinks', async (c) => {
    requireRole(c, ['admin']);
    const sink = parseAlertSink(await jsonBody(c), 'body');
    const replaced = await store.saveSink(sink, clock());
    await store.triage.audit({ actor: actorOf(c), action: replaced ? 'sink-update' : 'sink-create', target: `sink:${sink.id}`, detail: { type: sink.type, minSeverity: sink.minSeverity }, now: clock() });
    return c.json({ sink: redactSink(sink) }, replaced ? 200 : 201);
  });
  app.get('/api/v1/sinks', async (c) => {
    requireRole(c, ['admin']);
    return c.json({ sinks: (await store.listSinks()).map(redactSink) });
  });
  app.delete('/api/v1/sinks/:id', async (c) => {
    requireRole(c, ['admin']);
    const id = c.req.param('id');
    if (!(await store.deleteSink(id))) throw new QuicksandError('NOT_FOUND', `sink ${id} is not configured`);
    await store.triage.audit({ actor: actorOf(c), action: 'sink-delete', target: `sink:${id}`, now: clock() });
    return c.json({ deleted: id });
  });
  // Every alert queued and every attempt to deliver it: the evidence that alerts were handled.
  app.get('/api/v1/alerts', async (c) => {
    const query = parseWith(OPERATIONS.listAlerts.query, c.req.query(), 'query');
    const { state } = query;
    const [{ deliveries, next }, held] = await Promise.all([
      state === 'held' ? { deliveries: [], next: null } : store.alertQueue.pageDeliveries({ hostId: query.host, state, limit: query.limit, after: query.cursor }),
      // What the throttle holds is no delivery yet: listed beside them (on every page), with why and until when.
      state === undefined || state === 'held' ? store.heldAlerts.list(query.host) : [],
    ]);
    const attempts = await store.alertQueue.attemptsOf(deliveries.map((d) => d.id));
    return c.json({ deliveries: deliveries.map((d) => ({ ...d, attemptLog: attempts.get(d.id) ?? [] })), held, next });
  });
}
