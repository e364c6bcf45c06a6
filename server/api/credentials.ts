// The credentials' lifecycle, admin only and audited: enrolment secrets that expire and run out
// of uses, their list and revocation; API tokens' list and revocation. Texts are shown once, at
// creation; lists show ids and states only.
import type { Hono } from 'hono';
import { QuicksandError } from '../../shared/errors.js';
import { OPERATIONS } from './openapi.js';
import { parseDuration } from '../../shared/duration.js';
import { splitCredential } from '../secrets.js';
import { actorOf, jsonBody, parseWith, requireRole } from './context.js';
import type { AppDeps, Env } from './context.js';


/** /api/v1/enroll-secrets..., /api/v1/tokens... */
export function credentialRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  app.post('/api/v1/enroll-secrets', async (c) => {
    requireRole(c, ['admin']);
    const body = parseWith(OPERATIONS.createEnrollSecret.body, await jsonBody(c), 'body');
    const now = clock();
    const expiresAt = body.expires === undefined ? undefined : new Date(now.getTime() + parseDuration(body.expires)!);
    const secret = await store.createEnrollSecret(now, { ...(expiresAt === undefined ? {} : { expiresAt }), ...(body.uses === undefined ? {} : { maxUses: body.uses }) });
    const id = splitCredential(secret, 'qse')!.id;
    await store.triage.audit({ actor: actorOf(c), action: 'enroll-secret-create', target: `enroll-secret:${id}`, detail: { expiresAt: expiresAt?.toISOString() ?? null, maxUses: body.uses ?? null }, now });
    return c.json({ id, secret, expiresAt: expiresAt?.toISOString() ?? null, maxUses: body.uses ?? null }, 201);
  });
  app.get('/api/v1/enroll-secrets', async (c) => {
    requireRole(c, ['admin']);
    return c.json({ secrets: await store.listEnrollSecrets(clock()) });
  });
  app.delete('/api/v1/enroll-secrets/:id', async (c) => {
    requireRole(c, ['admin']);
    const id = c.req.param('id');
    if (!(await store.revokeEnrollSecret(id, clock()))) throw new QuicksandError('NOT_FOUND', `enrolment secret ${id} is not known or already revoked`);
    await store.triage.audit({ actor: actorOf(c), action: 'enroll-secret-revoke', target: `enroll-secret:${id}`, now: clock() });
    return c.json({ revoked: id });
  });
  app.get('/api/v1/tokens', async (c) => {
    requireRole(c, ['admin']);
    return c.json({ tokens: await store.listApiTokens() });
  });
  app.delete('/api/v1/tokens/:id', async (c) => {
    requireRole(c, ['admin']);
    const id = c.req.param('id');
    if (!(await store.revokeApiToken(id, clock()))) throw new QuicksandError('NOT_FOUND', `API token ${id} is not known or already revoked`);
    await store.triage.audit({ actor: actorOf(c), action: 'token-revoke', target: `token:${id}`, now: clock() });
    return c.json({ revoked: id });
  });
}
