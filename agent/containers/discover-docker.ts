import path from 'node:path';
import { z } from 'zod';
import type { ScanWarning } from '../../shared/report.js';
import { listDir } from '../collect/read.js';
import { lowersOf, parseJsonFile, readSmall } from './overlay-dirs.js';
import type { DiscoveredContainer, Discovery } from './types.js';
import type { ContainerdStore } from './containerd-store.js';
import { dockerSnapshot } from './discover-containerd.js';

/**
 * Docker with the overlay2 graph driver, read from disk relative to the host root (moby:
 * daemon/container (config.v2.json), layer/filestore.go (layerdb), daemon/graphdriver/overlay2):
 * - `var/lib/docker/containers/<id>/config.v2.json`: `ID`, `Name` ("/name"), `Image`
 *   ("sha256:<image id>"), `Config.Image` (the reference it was started from), `Driver`,
 *   `State.Running`;
 * - `var/lib/docker/image/overlay2/layerdb/mounts/<id>/mount-id`: the writable layer's folder
 *   in `overlay2/` (`init-id` is `<mount-id>-init`, Docker's own /etc/hosts, /.dockerenv…);
 * - `var/lib/docker/overlay2/<mount-id>/{diff,lower}`: the writable layer and the layers below it.
 * Containers of Docker's containerd image store (Docker ≥ 29 on fresh installs) have no layerdb
 * mount: `Driver` names the containerd snapshotter ("overlayfs") and the snapshot, keyed by the
 * container id in containerd's `moby` namespace, is looked up in containerd's databases
 * (discover-containerd.ts `dockerSnapshot`). Without them a running one is still found through
 * the mount table.
 */
const configSchema = z.object({
  ID: z.string().regex(/^[0-9a-f]{12,128}$/, 'expected a container id'),
  Name: z.string().max(256).optional(),
  Image: z.string().max(256).optional(),
  Driver: z.string().max(64).optional(),
  Config: z.object({ Image: z.string().max(512).optional() }).optional(),
  State: z.object({ Running: z.boolean().optional(), Dead: z.boolean().optional(), RemovalInProgress: z.boolean().optional() }).optional(),
});

export async function discoverDocker(rootDir: string, containerd: ContainerdStore | null, dockerRoot = 'var/lib/docker'): Promise<Discovery> {
  const home = path.join(rootDir, dockerRoot);
  const containers: DiscoveredContainer[] = [];
  const warnings: ScanWarning[] = [];
  for (const e of await listDir(path.join(home, 'containers'))) {
    if (!e.isDirectory()) continue;
    const file = path.join(home, 'containers', e.name, 'config.v2.json');
    try {
      const text = await readSmall(file);
      if (text === null) {
        // Being created or removed right now: nothing to read yet, nothing wrong.
        warnings.push({ code: 'CONTAINER_METADATA_MISSING', path: file, message: `docker container ${e.name} has no config.v2.json (being created or removed): skipped` });
        continue;
      }
      const config = parseJsonFile(text, file, configSchema);
      const driver = config.Driver ?? 'overlay2';
      const ident = {
        runtime: 'docker' as const,
        id: config.ID,
        ...(config.Name ? { name: config.Name.replace(/^\//, '') } : {}),
        image: { ...(config.Config?.Image ? { ref: config.Config.Image } : {}), ...(config.Image ? { id: config.Image } : {}) },
        state: config.State?.Running ? ('running' as const) : ('stopped' as const),
      };
      if (driver !== 'overlay2') {
        // The containerd image store: the snapshotter's name is the driver's ("overlayfs").
        if (containerd === null) continue; // a running one is found through the mount table
        const layers = dockerSnapshot(containerd, config.ID, driver);
        if (layers instanceof Error) warnings.push({ code: 'CONTAINER_METADATA_MISSING', path: file, message: `docker container ${config.ID}: ${layers.message}: skipped` });
        else containers.push({ ...ident, ...layers });
        continue;
      }
      const mountFile = path.join(home, 'image', driver, 'layerdb', 'mounts', config.ID, 'mount-id');
      const mountId = (await readSmall(mountFile, 256))?.trim();
      if (!mountId || !/^[0-9a-f]{16,128}$/.test(mountId)) {
        warnings.push({ code: 'CONTAINER_METADATA_MISSING', path: mountFile, message: `docker container ${config.ID} has no layer mount record: skipped` });
        continue;
      }
      const overlay = path.join(home, driver);
      const lowers = await lowersOf(overlay, mountId);
      const init = path.join(overlay, `${mountId}-init`, 'diff');
      containers.push({
        ...ident,
        upper: path.join(overlay, mountId, 'diff'),
        lowers,
        imageLowers: lowers.filter((l) => l !== init),
      });
    } catch (err) {
      warnings.push({ code: 'CONTAINER_METADATA_INVALID', path: file, message: (err as Error).message });
    }
  }
  return { containers, warnings };
}
