// The credentials' lifecycle, admin only and audited: enrolment secrets that expire and run out
// of uses, their list and revocation; API tokens' list and revocation. Texts are shown once, at
// creation; lists show ids and states only.
import type { Hono } from 'hono';
import { OPERATIONS } from './openapi.js';
import { createEnrollSecretAudited, revokeApiTokenAudited, revokeEnrollSecretAudited } from '../admin/accounts.js';
import { actorOf, jsonBody, parseWith, requireRole } from './context.js';
import type { AppDeps, Env } from './context.js';


/** /api/v1/enroll-secrets..., /api/v1/tokens... */
export function credentialRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  app.post('/api/v1/enroll-secrets', async (c) => {
    requireRole(c, ['admin']);
    const body = parseWith(OPERATIONS.createEnrollSecret.body, await jsonBody(c), 'body');
    return c.json(await createEnrollSecretAudited(store, { ...body, actor: actorOf(c), now: clock() }), 201);
  });
  app.get('/api/v1/enroll-secrets', async (c) => {
    requireRole(c, ['admin']);
    return c.json({ secrets: await store.listEnrollSecrets(clock()) });
  });
  app.delete('/api/v1/enroll-secrets/:id', async (c) => {
    requireRole(c, ['admin']);
    const id = c.req.param('id');
    await revokeEnrollSecretAudited(store, id, actorOf(c), clock());
    return c.json({ revoked: id });
  });
  app.get('/api/v1/tokens', async (c) => {
    requireRole(c, ['admin']);
    return c.json({ tokens: await store.listApiTokens() });
  });
  app.delete('/api/v1/tokens/:id', async (c) => {
    requireRole(c, ['admin']);
    const id = c.req.param('id');
    await revokeApiTokenAudited(store, id, actorOf(c), clock());
    return c.json({ revoked: id });
  });
}
