// Alert sinks and the alerts delivered through them.
import type { Hono } from 'hono';
import { OPERATIONS } from './openapi.js';
import { parseAlertSink } from '../../shared/alerts.js';
import { alertsPage, deleteSinkAudited, redactSink, saveSinkAudited } from '../admin/sinks.js';
import { actorOf, jsonBody, parseWith, requireRole } from './context.js';
import type { AppDeps, Env } from './context.js';

/** /api/v1/sinks..., GET /api/v1/alerts. */
export function sinkRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  // Alert sinks: admin only (they hold credentials of other systems).
  app.post('/api/v1/sinks', async (c) => {
    requireRole(c, ['admin']);
    const sink = parseAlertSink(await jsonBody(c), 'body');
    const replaced = await saveSinkAudited(store, sink, actorOf(c), clock());
    return c.json({ sink: redactSink(sink) }, replaced ? 200 : 201);
  });
  app.get('/api/v1/sinks', async (c) => {
    requireRole(c, ['admin']);
    return c.json({ sinks: (await store.listSinks()).map(redactSink) });
  });
  app.delete('/api/v1/sinks/:id', async (c) => {
    requireRole(c, ['admin']);
    const id = c.req.param('id');
    await deleteSinkAudited(store, id, actorOf(c), clock());
    return c.json({ deleted: id });
  });
  // Every alert queued and every attempt to deliver it: the evidence that alerts were handled.
  app.get('/api/v1/alerts', async (c) => c.json(await alertsPage(store, parseWith(OPERATIONS.listAlerts.query, c.req.query(), 'query'))));
}
