import type { Manifest } from '../../shared/manifest.js';
import { MANIFEST_SCHEMA, manifestSchema } from '../../shared/manifest.js';
import type { Policy } from '../../shared/policy.js';
import { formatIssues } from '../../shared/schema-errors.js';
import { QuicksandError } from '../../shared/errors.js';
import type { Collector } from '../collect/types.js';
import { collectPackages } from '../fingerprint/observe.js';
import { checkImageLayers } from './image-seal.js';
import type { ImageSeal } from './image-seal.js';
import { LayerStack, layeredRoot } from './layers.js';
import { ContainerScanContext } from './scan-container.js';

/**
 * The manifest of a container image read from its layer folders (top first, as overlay's
 * `lowerdir` names them), through the agent's own layer resolution, never a mount: its packages
 * and the files of its tracked paths with their digests, as the container scans compare them.
 */
export async function manifestFromLayers(dirs: readonly string[], image: { name: string; version: string }, policy: Policy, collectors?: readonly Collector[]): Promise<{ manifest: Manifest; warnings: string[] }> {
  const ctx = new ContainerScanContext(policy, collectors);
  const { lowers, warnings } = await ctx.layersOf(null, dirs);
  const stack = new LayerStack(lowers, ctx.probes);
  const packages = await collectPackages(layeredRoot(stack, 'image'), collectors);
  const { seal } = checkImageLayers(stack, policy, undefined);
  const files = [...seal.files.values()].map((f) => {
    const owner = packages.owned.get(f.path)?.owner;
    return owner ? { ...f, owner } : f;
  });
  const manifest: Manifest = { schema: MANIFEST_SCHEMA, image: { ...image, createdAt: new Date().toISOString(), source: 'root' }, policy, packages: packages.packages, files };
  return { manifest, warnings: [...warnings, ...packages.warnings.map((w) => `${w.code} ${w.path ?? ''}: ${w.message}`)] };
}

/** An uploaded manifest as the seal the image's layers are checked against. */
export function sealFromManifest(manifest: Manifest): ImageSeal {
  return { source: 'uploaded', files: new Map(manifest.files.map((f) => [f.path, f])), packages: manifest.packages, stats: new Map() };
}

/** Parses a manifest the server sent for an image; the error names the image and the fields. */
export function parseImageManifest(value: unknown, what: string): Manifest {
  const r = manifestSchema.safeParse(value);
  if (!r.success) throw new QuicksandError('MANIFEST_INVALID', `${what} is not a valid manifest:\n${formatIssues(r.error)}`);
  return r.data;
}
