import type { Database as Db } from 'better-sqlite3';
import type { Synchronous } from './async-adapter.js';
import type { Images } from './types.js';

/** Manifests uploaded by image builders: what hosts of that image are expected to hold. */
export function createImages(db: Db): Synchronous<Images> {
  const exists = db.prepare<[string, string], { manifest: string | null }>('SELECT manifest FROM images WHERE name = ? AND version = ?');
  const upsert = db.prepare(
    `INSERT INTO images (name, version, source, first_seen, last_seen, manifest, packages, files)
     VALUES (@name, @version, 'uploaded', @now, @now, @manifest, @packages, @files)
     ON CONFLICT (name, version) DO UPDATE SET source = 'uploaded', manifest = excluded.manifest,
       packages = excluded.packages, files = excluded.files, last_seen = excluded.last_seen`,
  );
  const uploaded = db.prepare<[string, string], { manifest: string | null }>("SELECT manifest FROM images WHERE name = ? AND version = ? AND source = 'uploaded'");
  return {
    uploadedManifest: (name, version) => uploaded.get(name, version)?.manifest ?? null,
    saveManifest(manifest, now) {
      const before = exists.get(manifest.image.name, manifest.image.version);
      upsert.run({
        name: manifest.image.name,
        version: manifest.image.version,
        now: now.toISOString(),
        manifest: JSON.stringify(manifest),
        packages: manifest.packages.length,
        files: manifest.files.length,
      });
      return before?.manifest != null;
    },
  };
}
