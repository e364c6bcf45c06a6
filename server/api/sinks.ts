// Alert sinks and the alerts delivered through them.
import type { Hono } from 'hono';
import { alertsQuerySchema } from '../../shared/api.js';
import { parseAlertSink } from '../../shared/alerts.js';
import type { AlertSink } from '../../shared/alerts.js';
import { QuicksandError } from '../../shared/errors.js';
import { actorOf, jsonBody, parseWith, requireRole } from './context.js';
import type { AppDeps, Env } from './context.js';

/** A sink as the API shows it: the credential (secret, routing key, Slack URL) never leaves. */
function redactSink(sink: AlertSink): Record<string, unknown> {
  switch (sink.type) {
    case 'webhook':
      return { ...sink, secret: '(set)' };
    case 'pagerduty':
      return { ...sink, routingKey: `…${sink.routingKey.slice(-4)}` };
    case 'slack':
      return { ...sink, url: `${new URL(sink.url).origin}/…` };
  }
}

/** /api/v1/sinks..., GET /api/v1/alerts. */
export function sinkRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  // Alert sinks: admin only (they hold credentials of other systems).
  app.post('/api/v1/sinks', async (c) => {
    requireRole(c, ['admin']);
    const sink = parseAlertSink(await jsonBody(c), 'body');
    const replaced = store.saveSink(sink, clock());
    store.triage.audit({ actor: actorOf(c), action: replaced ? 'sink-update' : 'sink-create', target: `sink:${sink.id}`, detail: { type: sink.type, minSeverity: sink.minSeverity }, now: clock() });
    return c.json({ sink: redactSink(sink) }, replaced ? 200 : 201);
  });
  app.get('/api/v1/sinks', (c) => {
    requireRole(c, ['admin']);
    return c.json({ sinks: store.listSinks().map(redactSink) });
  });
  app.delete('/api/v1/sinks/:id', (c) => {
    requireRole(c, ['admin']);
    const id = c.req.param('id');
    if (!store.deleteSink(id)) throw new QuicksandError('NOT_FOUND', `sink ${id} is not configured`);
    store.triage.audit({ actor: actorOf(c), action: 'sink-delete', target: `sink:${id}`, now: clock() });
    return c.json({ deleted: id });
  });
  // Every alert queued and every attempt to deliver it: the evidence that alerts were handled.
  app.get('/api/v1/alerts', (c) => {
    const query = parseWith(alertsQuerySchema, c.req.query(), 'query');
    const deliveries = store.alertQueue.listDeliveries(query.host);
    return c.json({ deliveries: deliveries.map((d) => ({ ...d, attemptLog: store.alertQueue.listAttempts(d.id) })) });
  });
}
