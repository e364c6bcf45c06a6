// Images: the manifests hosts are compared with.
import type { Hono } from 'hono';
import { parseManifest } from '../../shared/manifest.js';
import { jsonBody, requireRole } from './context.js';
import type { AppDeps, Env } from './context.js';

/** GET and POST /api/v1/images. */
export function imageRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  app.get('/api/v1/images', (c) => c.json({ images: store.listImages() }));
  app.post('/api/v1/images', async (c) => {
    requireRole(c, ['admin', 'analyst']);
    const manifest = parseManifest(await jsonBody(c, 'MANIFEST_UNREADABLE', 'body: expected the manifest as JSON (gunzip a .json.gz first)'), 'body');
    const replaced = store.saveManifest(manifest, clock());
    return c.json({ name: manifest.image.name, version: manifest.image.version, packages: manifest.packages.length, files: manifest.files.length }, replaced ? 200 : 201);
  });
}
