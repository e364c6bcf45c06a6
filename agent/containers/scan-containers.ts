import path from 'node:path';
import type { Policy } from '../../shared/policy.js';
import type { ContainerReport, ScanWarning } from '../../shared/report.js';
import { MAX_CONTAINERS_PER_REPORT } from '../../shared/report.js';
import type { Collector } from '../collect/types.js';
import { openContainerd } from './containerd-store.js';
import { discoverContainerd } from './discover-containerd.js';
import { discoverDocker } from './discover-docker.js';
import { discoverPodman } from './discover-podman.js';
import { LayerAttrCache } from './layer-attr-cache.js';
import { XATTRS_UNAVAILABLE } from './overlay-xattrs.js';
import { ContainerScanContext, scanContainer, uploadKey } from './scan-container.js';
import { sealFromManifest } from './image-manifest.js';
import type { DiscoveredContainer, Discovery } from './types.js';
import type { Manifest } from '../../shared/manifest.js';

/** Every container of the host under `rootDir`: Docker (overlay2 and the containerd image store), Podman/CRI-O, containerd. */
export async function discoverContainers(rootDir: string): Promise<Discovery> {
  const containerd = await openContainerd(rootDir);
  const found = await Promise.all([discoverDocker(rootDir, containerd.store), discoverPodman(rootDir), discoverContainerd(rootDir, containerd)]);
  const seen = new Set<string>();
  const out: Discovery = { containers: [], warnings: [] };
  for (const d of found) {
    out.warnings.push(...d.warnings);
    for (const c of d.containers) {
      // A container of Docker's overlay2 driver is also in the mount table while it runs.
      const key = `${c.runtime}:${c.id}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.containers.push(c);
    }
  }
  return out;
}

export interface ContainersScan {
  containers: ContainerReport[];
  warnings: ScanWarning[];
}

/**
 * Discovers the host's containers and reads each one's drift from its image (see
 * scan-container.ts). One container that cannot be read is a warning on it, never the end of the
 * scan; a container removed meanwhile is reported `gone`.
 */
export async function scanContainers(
  rootDir: string,
  policy: Policy,
  opts: { collectors?: readonly Collector[]; context?: ContainerScanContext; stateDir?: string; imageManifest?: ImageManifestSource; manifestTimeoutMs?: number; fullCheckMs?: number } = {},
): Promise<ContainersScan> {
  const discovery = await discoverContainers(rootDir);
  const cache = new LayerAttrCache(opts.stateDir === undefined ? null : path.join(opts.stateDir, LAYER_CACHE_FILE));
  const ctx = opts.context ?? new ContainerScanContext(policy, opts.collectors, cache, opts.fullCheckMs === undefined ? {} : { fullCheckMs: opts.fullCheckMs });
  const containers: ContainerReport[] = [];
  const warnings = [...discovery.warnings];
  const list = discovery.containers.slice(0, MAX_CONTAINERS_PER_REPORT);
  if (list.length < discovery.containers.length) warnings.push({ code: 'CONTAINERS_TRUNCATED', message: `${discovery.containers.length} containers found; the first ${list.length} were read` });
  if (opts.imageManifest) warnings.push(...(await fetchUploaded(list, ctx, opts.imageManifest, opts.manifestTimeoutMs ?? MANIFEST_TIMEOUT_MS)));
  const attrErrors = await ctx.readAhead(list);
  // Errors of one layer (removed meanwhile) are the container's own when it is read again below.
  if (attrErrors.some((e) => e.startsWith(XATTRS_UNAVAILABLE))) warnings.push({ code: 'CONTAINER_XATTRS_UNREADABLE', message: attrErrors[0]! });
  for (const c of list) {
    try {
      containers.push(await scanContainer(c, ctx));
    } catch (err) {
      warnings.push({ code: 'CONTAINER_SCAN_FAILED', path: c.upper, message: `${c.runtime} container ${c.id} not read: ${(err as Error).message}` });
    }
  }
  ctx.layerCache.save();
  const oldest = ctx.oldestFullCheck();
  if (oldest !== undefined) {
    warnings.push({
      code: 'CONTAINER_IMAGE_LAYERS_FOLDERS_CHECKED',
      message:
        `image layers: their folders were checked (a file added, removed or renamed in a layer is seen at once); ` +
        `every file of them was last read in full at ${new Date(oldest).toISOString()}, next after ${new Date(oldest + ctx.fullCheckMs).toISOString()} ` +
        `(a file rewritten in place in a layer since then is seen then)`,
    });
  }
  return { containers, warnings };
}

/** How long the server may take to answer for one image's manifest before the kept seal is used. */
export const MANIFEST_TIMEOUT_MS = 5000;

/**
 * The manifest uploaded for an image (reference and id), null when none was; throws when it cannot
 * be had. `signal` aborts it when the server takes too long.
 */
export type ImageManifestSource = (image: { ref: string; id: string }, signal: AbortSignal) => Promise<Manifest | null>;

/**
 * Asks for each image's uploaded manifest once, each within `timeoutMs`; one that cannot be had
 * leaves the image's seal as it is. After a server that did not answer in time, the other images
 * are not asked: a server that drops packets costs one timeout per scan, not one per image.
 */
async function fetchUploaded(list: readonly DiscoveredContainer[], ctx: ContainerScanContext, source: ImageManifestSource, timeoutMs: number): Promise<ScanWarning[]> {
  const warnings: ScanWarning[] = [];
  const asked = new Set<string>();
  let silent = false;
  for (const c of list) {
    const { ref, id } = c.image;
    if (ref === undefined || id === undefined || asked.has(uploadKey(ref, id))) continue;
    asked.add(uploadKey(ref, id));
    const unavailable = (why: string): number => warnings.push({ code: 'CONTAINER_IMAGE_MANIFEST_UNAVAILABLE', message: `the manifest uploaded for image ${ref} ${id} could not be had: ${why}; the image's kept seal is used` });
    if (silent) {
      unavailable(`not asked: the server did not answer within ${timeoutMs / 1000} s for another image`);
      continue;
    }
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abort.abort(new Error('timeout'));
        reject(new ManifestTimeout(`no answer within ${timeoutMs / 1000} s`));
      }, timeoutMs);
    });
    try {
      // Raced as well as aborted: a source that ignores the signal still cannot hold the scan.
      const m = await Promise.race([source({ ref, id }, abort.signal), late]);
      if (m !== null) ctx.uploaded.set(uploadKey(ref, id), sealFromManifest(m));
    } catch (err) {
      if (err instanceof ManifestTimeout || abort.signal.aborted) {
        silent = true;
        unavailable(`no answer within ${timeoutMs / 1000} s`);
      } else unavailable((err as Error).message);
    } finally {
      clearTimeout(timer);
    }
  }
  return warnings;
}

class ManifestTimeout extends Error {}

/** In the agent's state folder: the image layers' overlay attributes (see layer-attr-cache.ts). */
export const LAYER_CACHE_FILE = 'container-layers.json';
