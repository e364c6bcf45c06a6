// Images: the manifests hosts are compared with.
import type { Hono } from 'hono';
import { bodyBytes, requireRole } from './context.js';
import type { AppDeps, Env } from './context.js';

/** GET and POST /api/v1/images. */
export function imageRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  app.get('/api/v1/images', async (c) => c.json({ images: await store.listImages() }));
  app.post('/api/v1/images', async (c) => {
    requireRole(c, ['admin', 'analyst']);
    // Parsed and stored off this thread: a large manifest takes seconds.
    const { replaced, ...summary } = await (deps.uploads ?? store.uploads).image(await bodyBytes(c), clock());
    return c.json(summary, replaced ? 200 : 201);
  });
}
