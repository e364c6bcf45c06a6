// Containers: a container host's containers, and the fleet's ("which containers of image X
// drifted, on which hosts"). A container's findings and triage are its own host id's.
import type { Hono } from 'hono';
import { OPERATIONS } from './openapi.js';
import { QuicksandError } from '../../shared/errors.js';
import { parseWith } from './context.js';
import type { AppDeps, Env } from './context.js';

/** GET /api/v1/containers, GET /api/v1/hosts/:id/containers. */
export function containerRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  app.get('/api/v1/containers', async (c) => {
    const query = parseWith(OPERATIONS.listContainers.query, c.req.query(), 'query');
    return c.json({ containers: await store.listContainers(query, clock()) });
  });
  app.get('/api/v1/hosts/:id/containers', async (c) => {
    const containers = await store.hostContainers(c.req.param('id'), clock());
    if (containers === null) throw new QuicksandError('NOT_FOUND', `host ${c.req.param('id')} is not known`);
    return c.json({ containers });
  });
}
