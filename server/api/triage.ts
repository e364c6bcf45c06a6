// Triage of findings: approve (one finding or a change set), reopen, and the audit log of it all.
import type { Hono } from 'hono';
import { OPERATIONS } from './openapi.js';
import { TRIAGE_ROLES, actorOf, jsonBody, numericId, parseWith, requireRole } from './context.js';
import type { AppDeps, Env } from './context.js';

/** POST .../findings/:fid/approve, .../change-sets/:cs/approve, .../findings/:fid/reopen; GET /api/v1/audit. */
export function triageRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  // Triage: analysts and admins act, auditors read. Every act is in the audit log.
  app.post('/api/v1/hosts/:id/findings/:fid/approve', async (c) => {
    requireRole(c, TRIAGE_ROLES);
    const body = parseWith(OPERATIONS.approveFinding.body, await jsonBody(c), 'body');
    const res = await store.triage.approve({ hostId: c.req.param('id'), findingIds: [numericId(c.req.param('fid'), 'path.findingId')], ...body, actor: actorOf(c), now: clock() });
    return c.json(res, 201);
  });
  app.post('/api/v1/hosts/:id/change-sets/:cs/approve', async (c) => {
    requireRole(c, TRIAGE_ROLES);
    const body = parseWith(OPERATIONS.approveChangeSet.body, await jsonBody(c), 'body');
    const res = await store.triage.approve({ hostId: c.req.param('id'), changeSet: c.req.param('cs'), ...body, actor: actorOf(c), now: clock() });
    return c.json(res, 201);
  });
  app.post('/api/v1/hosts/:id/findings/:fid/reopen', async (c) => {
    requireRole(c, TRIAGE_ROLES);
    const body = parseWith(OPERATIONS.reopenFinding.body, await jsonBody(c), 'body');
    return c.json(await store.triage.reopen({ hostId: c.req.param('id'), findingId: numericId(c.req.param('fid'), 'path.findingId'), reason: body.reason, actor: actorOf(c), now: clock() }));
  });
  app.get('/api/v1/audit', async (c) => {
    const query = parseWith(OPERATIONS.listAudit.query, c.req.query(), 'query');
    return c.json(await store.triage.listAudit(query));
  });
}
