// Hosts: the fleet, one host, its findings and reports, scan-now, labels, and revoking its agent.
import type { Hono } from 'hono';
import { OPERATIONS } from './openapi.js';
import { QuicksandError } from '../../shared/errors.js';
import { TRIAGE_ROLES, actorOf, jsonBody, parseWith, requireRole } from './context.js';
import type { AppDeps, Env } from './context.js';

/** /api/v1/hosts..., PUT /api/v1/hosts/:id/labels, DELETE /api/v1/agents/:id. */
export function hostRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  app.get('/api/v1/hosts', async (c) => {
    const query = parseWith(OPERATIONS.listHosts.query, c.req.query(), 'query');
    return c.json({ hosts: await store.listHosts(query, clock()) });
  });
  app.get('/api/v1/hosts/:id', async (c) => {
    const host = await store.getHost(c.req.param('id'), clock());
    if (host === null) throw new QuicksandError('NOT_FOUND', `host ${c.req.param('id')} is not known`);
    return c.json({ ...host, connected: (await deps.stream?.isConnected(host.id)) ?? false });
  });
  app.get('/api/v1/hosts/:id/findings', async (c) => {
    const query = parseWith(OPERATIONS.listFindings.query, c.req.query(), 'query');
    const findings = await store.listFindings(c.req.param('id'), query, clock());
    if (findings === null) throw new QuicksandError('NOT_FOUND', `host ${c.req.param('id')} is not known`);
    return c.json({ findings });
  });
  app.get('/api/v1/hosts/:id/reports', async (c) => {
    const id = c.req.param('id');
    if ((await store.getHost(id, clock())) === null) throw new QuicksandError('NOT_FOUND', `host ${id} is not known`);
    return c.json({ reports: await store.listReports(id) });
  });
  // The package manager runs that explain a host's drift: command, tool, time, packages, paths.
  app.get('/api/v1/hosts/:id/change-sets', async (c) => {
    const changeSets = await store.listChangeSets(c.req.param('id'));
    if (changeSets === null) throw new QuicksandError('NOT_FOUND', `host ${c.req.param('id')} is not known`);
    return c.json({ changeSets });
  });
  app.get('/api/v1/hosts/:id/change-sets/:cs', async (c) => {
    const cs = await store.getChangeSet(c.req.param('id'), c.req.param('cs'));
    if (cs === null) throw new QuicksandError('NOT_FOUND', `host ${c.req.param('id')} has no change set ${c.req.param('cs')}`);
    return c.json(cs);
  });
  app.post('/api/v1/hosts/:id/scan-now', async (c) => {
    requireRole(c, ['admin', 'analyst']);
    const id = c.req.param('id');
    if ((await store.getHost(id, clock())) === null) throw new QuicksandError('NOT_FOUND', `host ${id} is not known`);
    if ((await deps.stream?.sendCommand(id, 'scan-now')) !== true) return c.json({ error: { code: 'NOT_CONNECTED', message: `agent ${id} is not connected now` } }, 409);
    return c.json({ sent: true }, 202);
  });
  // Labels the rules match on (`hostLabels`); they replace what the API set before.
  app.put('/api/v1/hosts/:id/labels', async (c) => {
    requireRole(c, TRIAGE_ROLES);
    const body = parseWith(OPERATIONS.putLabels.body, await jsonBody(c), 'body');
    return c.json(await store.triage.setLabels({ hostId: c.req.param('id'), labels: body.labels, ...(body.reason === undefined ? {} : { reason: body.reason }), actor: actorOf(c), now: clock() }));
  });
  app.delete('/api/v1/agents/:id', async (c) => {
    requireRole(c, ['admin']);
    const id = c.req.param('id');
    if (!(await store.revokeAgent(id, clock()))) throw new QuicksandError('NOT_FOUND', `agent ${id} is not known or already revoked`);
    await store.triage.audit({ actor: actorOf(c), action: 'agent-revoke', target: `host:${id}`, now: clock() });
    await deps.stream?.disconnect(id, 'token revoked');
    return c.json({ revoked: id });
  });
}
