import type { Images } from '../types.js';
import type { PgDatabase } from './db.js';

/** Manifests uploaded by image builders, on PostgreSQL: what hosts of that image are expected to hold. */
export function createPgImages(db: PgDatabase): Images {
  return {
    uploadedManifest: async (name, version) => (await db.row<{ manifest: string | null }>("SELECT manifest FROM images WHERE name = $1 AND version = $2 AND source = 'uploaded'", [name, version]))?.manifest ?? null,
    saveManifest: (manifest, now) =>
      db.tx(async (q) => {
        const before = await q.row<{ manifest: string | null }>('SELECT manifest FROM images WHERE name = $1 AND version = $2 FOR UPDATE', [manifest.image.name, manifest.image.version]);
        await q.run(
          `INSERT INTO images (name, version, source, first_seen, last_seen, manifest, packages, files) VALUES ($1, $2, 'uploaded', $3, $3, $4, $5, $6)
           ON CONFLICT (name, version) DO UPDATE SET source = 'uploaded', manifest = excluded.manifest, packages = excluded.packages, files = excluded.files, last_seen = excluded.last_seen`,
          [manifest.image.name, manifest.image.version, now.toISOString(), JSON.stringify(manifest), manifest.packages.length, manifest.files.length],
        );
        return before?.manifest != null;
      }),
  };
}
