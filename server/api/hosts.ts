// Hosts: the fleet, one host, its findings and reports, scan-now, labels, and revoking its agent.
import type { Hono } from 'hono';
import { findingsQuerySchema, hostsQuerySchema, labelsBodySchema } from '../../shared/api.js';
import { QuicksandError } from '../../shared/errors.js';
import { TRIAGE_ROLES, actorOf, jsonBody, parseWith, requireRole } from './context.js';
import type { AppDeps, Env } from './context.js';

/** /api/v1/hosts..., PUT /api/v1/hosts/:id/labels, DELETE /api/v1/agents/:id. */
export function hostRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  app.get('/api/v1/hosts', (c) => {
    const query = parseWith(hostsQuerySchema, c.req.query(), 'query');
    return c.json({ hosts: store.listHosts(query, clock()) });
  });
  app.get('/api/v1/hosts/:id', (c) => {
    const host = store.getHost(c.req.param('id'), clock());
    if (host === null) throw new QuicksandError('NOT_FOUND', `host ${c.req.param('id')} is not known`);
    return c.json({ ...host, connected: deps.stream?.isConnected(host.id) ?? false });
  });
  app.get('/api/v1/hosts/:id/findings', (c) => {
    const query = parseWith(findingsQuerySchema, c.req.query(), 'query');
    const findings = store.listFindings(c.req.param('id'), query, clock());
    if (findings === null) throw new QuicksandError('NOT_FOUND', `host ${c.req.param('id')} is not known`);
    return c.json({ findings });
  });
  app.get('/api/v1/hosts/:id/reports', (c) => {
    const id = c.req.param('id');
    if (store.getHost(id, clock()) === null) throw new QuicksandError('NOT_FOUND', `host ${id} is not known`);
    return c.json({ reports: store.listReports(id) });
  });
  app.post('/api/v1/hosts/:id/scan-now', (c) => {
    requireRole(c, ['admin', 'analyst']);
    const id = c.req.param('id');
    if (store.getHost(id, clock()) === null) throw new QuicksandError('NOT_FOUND', `host ${id} is not known`);
    if (deps.stream?.sendCommand(id, 'scan-now') !== true) return c.json({ error: { code: 'NOT_CONNECTED', message: `agent ${id} is not connected now` } }, 409);
    return c.json({ sent: true }, 202);
  });
  // Labels the rules match on (`hostLabels`); they replace what the API set before.
  app.put('/api/v1/hosts/:id/labels', async (c) => {
    requireRole(c, TRIAGE_ROLES);
    const body = parseWith(labelsBodySchema, await jsonBody(c), 'body');
    return c.json(store.triage.setLabels({ hostId: c.req.param('id'), labels: body.labels, ...(body.reason === undefined ? {} : { reason: body.reason }), actor: actorOf(c), now: clock() }));
  });
  app.delete('/api/v1/agents/:id', (c) => {
    requireRole(c, ['admin']);
    const id = c.req.param('id');
    if (!store.revokeAgent(id, clock())) throw new QuicksandError('NOT_FOUND', `agent ${id} is not known or already revoked`);
    store.triage.audit({ actor: actorOf(c), action: 'agent-revoke', target: `host:${id}`, now: clock() });
    deps.stream?.disconnect(id, 'token revoked');
    return c.json({ revoked: id });
  });
}
