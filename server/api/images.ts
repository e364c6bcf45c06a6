// Images: the manifests hosts are compared with.
import type { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { parseManifest } from '../../shared/manifest.js';
import { jsonBody, requireRole } from './context.js';
import type { AppDeps, Env } from './context.js';

/** GET and POST /api/v1/images. */
export function imageRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  app.get('/api/v1/images', (c) => c.json({ images: store.listImages() }));
  // A manifest of a large image is a few MB of JSON; anything far beyond is not a manifest.
  const manifestLimit = bodyLimit({
    maxSize: 64 * 1024 * 1024,
    onError: (c) => c.json({ error: { code: 'MANIFEST_INVALID', message: 'body: a manifest is at most 64 MiB' } }, 413),
  });
  app.post('/api/v1/images', manifestLimit, async (c) => {
    requireRole(c, ['admin', 'analyst']);
    const manifest = parseManifest(await jsonBody(c, 'MANIFEST_UNREADABLE', 'body: expected the manifest as JSON (gunzip a .json.gz first)'), 'body');
    const replaced = store.saveManifest(manifest, clock());
    return c.json({ name: manifest.image.name, version: manifest.image.version, packages: manifest.packages.length, files: manifest.files.length }, replaced ? 200 : 201);
  });
}
