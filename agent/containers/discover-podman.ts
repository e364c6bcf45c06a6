import path from 'node:path';
import { z } from 'zod';
import type { ScanWarning } from '../../shared/report.js';
import { lowersOf, parseJsonFile, readSmall } from './overlay-dirs.js';
import type { DiscoveredContainer, Discovery } from './types.js';

/**
 * Podman, Buildah and CRI-O share containers/storage; with the overlay driver its graph root
 * (`var/lib/containers/storage`, rootful) holds (containers/storage containers.go, layers.go,
 * images.go, drivers/overlay):
 * - `overlay-containers/containers.json`: `[{id, names, image, layer, metadata, created}]`, the
 *   `layer` being the container's writable layer; `metadata` is Podman's own JSON string
 *   (`image-name`, `image-id`, `name`);
 * - `overlay-layers/layers.json`: `[{id, parent, flags, …}]`; a layer still being written carries
 *   `flags.incomplete: true`;
 * - `overlay-images/images.json`: `[{id, names, layer}]`;
 * - and the transient store's siblings `volatile-containers.json` / `volatile-layers.json`
 *   (containers made with `--rm` or a transient store), read as well;
 * - `overlay/<layer id>/{diff,link,lower}` as with Docker's overlay2.
 * The run root (`run/containers/storage/overlay-layers/mountpoints.json`, `[{id, path, count}]`)
 * tells which layers are mounted: a container whose layer is mounted is running.
 */
const containerSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{12,128}$/, 'expected a container id'),
  names: z.array(z.string().max(256)).max(64).optional(),
  image: z.string().max(128).optional(),
  layer: z.string().regex(/^[0-9a-f]{12,128}$/, 'expected a layer id'),
  metadata: z.string().max(1 << 20).optional(),
});
const layerSchema = z.object({
  id: z.string().max(128),
  parent: z.string().max(128).optional(),
  flags: z.record(z.string(), z.unknown()).optional(),
});
const imageSchema = z.object({ id: z.string().max(128), names: z.array(z.string().max(512)).max(256).optional() });
const mountSchema = z.object({ id: z.string().max(128), count: z.number().int().optional() });
const metadataSchema = z.object({ 'image-name': z.string().max(512).optional(), 'image-id': z.string().max(128).optional(), name: z.string().max(256).optional() });

const LIMIT = 100_000;

export async function discoverPodman(rootDir: string, graphRoot = 'var/lib/containers/storage', runRoot = 'run/containers/storage'): Promise<Discovery> {
  const home = path.join(rootDir, graphRoot);
  const warnings: ScanWarning[] = [];
  const readList = async <T>(rel: string, schema: z.ZodType<T>): Promise<T[]> => {
    const file = path.join(home, rel);
    try {
      const text = await readSmall(file, 256 * 1024 * 1024);
      return text === null || text.trim() === '' ? [] : parseJsonFile(text, file, z.array(schema).max(LIMIT));
    } catch (err) {
      warnings.push({ code: 'CONTAINER_METADATA_INVALID', path: file, message: (err as Error).message });
      return [];
    }
  };
  const containers = [...(await readList('overlay-containers/containers.json', containerSchema)), ...(await readList('overlay-containers/volatile-containers.json', containerSchema))];
  if (containers.length === 0) return { containers: [], warnings };
  const layers = new Map([...(await readList('overlay-layers/layers.json', layerSchema)), ...(await readList('overlay-layers/volatile-layers.json', layerSchema))].map((l) => [l.id, l]));
  const images = new Map((await readList('overlay-images/images.json', imageSchema)).map((i) => [i.id, i]));
  const mountsFile = path.join(rootDir, runRoot, 'overlay-layers', 'mountpoints.json');
  let mounted = new Set<string>();
  try {
    const text = await readSmall(mountsFile);
    if (text !== null && text.trim() !== '') mounted = new Set(parseJsonFile(text, mountsFile, z.array(mountSchema).max(LIMIT)).filter((m) => (m.count ?? 0) > 0).map((m) => m.id));
  } catch (err) {
    warnings.push({ code: 'CONTAINER_METADATA_INVALID', path: mountsFile, message: (err as Error).message });
  }

  const overlay = path.join(home, 'overlay');
  const found: DiscoveredContainer[] = [];
  for (const c of containers) {
    const layer = layers.get(c.layer);
    if (layer === undefined || layer.flags?.incomplete === true) {
      warnings.push({ code: 'CONTAINER_METADATA_MISSING', path: path.join(overlay, c.layer), message: `podman container ${c.id}: its layer ${c.layer} is ${layer ? 'still being written' : 'not in layers.json'}: skipped` });
      continue;
    }
    let meta: z.infer<typeof metadataSchema> = {};
    if (c.metadata) {
      try {
        meta = parseJsonFile(c.metadata, `containers.json ${c.id} metadata`, metadataSchema);
      } catch {
        // Not Podman's (CRI-O and Buildah keep their own): the image record still names it.
      }
    }
    try {
      const lowers = await lowersOf(overlay, c.layer);
      const image = c.image ? images.get(c.image) : undefined;
      const ref = meta['image-name'] ?? image?.names?.[0];
      const name = meta.name ?? c.names?.[0];
      found.push({
        runtime: 'podman',
        id: c.id,
        ...(name ? { name } : {}),
        image: { ...(ref ? { ref } : {}), ...(c.image ? { id: `sha256:${c.image}` } : {}) },
        state: mounted.has(c.layer) ? 'running' : 'stopped',
        upper: path.join(overlay, c.layer, 'diff'),
        lowers,
        imageLowers: lowers,
      });
    } catch (err) {
      warnings.push({ code: 'CONTAINER_METADATA_INVALID', path: path.join(overlay, c.layer), message: (err as Error).message });
    }
  }
  return { containers: found, warnings };
}
