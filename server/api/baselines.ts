// A host's baseline versions: re-baseline, list, one version with its manifest.
import type { Hono } from 'hono';
import { OPERATIONS } from './openapi.js';
import { QuicksandError } from '../../shared/errors.js';
import { TRIAGE_ROLES, actorOf, jsonBody, numericId, parseWith, requireRole } from './context.js';
import type { AppDeps, Env } from './context.js';

/** POST /api/v1/hosts/:id/rebaseline, GET /api/v1/hosts/:id/baselines[/:version]. */
export function baselineRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  app.post('/api/v1/hosts/:id/rebaseline', async (c) => {
    requireRole(c, TRIAGE_ROLES);
    const body = parseWith(OPERATIONS.rebaseline.body, await jsonBody(c), 'body');
    const id = c.req.param('id');
    const res = await store.triage.rebaseline({ hostId: id, ...body, actor: actorOf(c), now: clock() });
    // The agent uploads what its host holds now; an agent not connected is asked when it says hello.
    const agentAsked = (await deps.stream?.sendCommand(id, { command: 'upload-observation', baseline: res.version })) === true;
    return c.json({ ...res, agentAsked }, 201);
  });
  app.get('/api/v1/hosts/:id/baselines', async (c) => {
    const list = await store.baselines.list(c.req.param('id'));
    if (list === null) throw new QuicksandError('NOT_FOUND', `host ${c.req.param('id')} is not known`);
    return c.json({ baselines: list });
  });
  // One version with its manifest (null until the agent's observation arrived).
  app.get('/api/v1/hosts/:id/baselines/:version', async (c) => {
    const version = numericId(c.req.param('version'), 'path.version', 'a baseline version');
    const b = await store.baselines.get(c.req.param('id'), version);
    if (b === null) throw new QuicksandError('NOT_FOUND', `host ${c.req.param('id')} has no baseline version ${version}`);
    return c.json(b);
  });
}
