// Large uploads (an image's manifest, a host's observation) from their raw bytes to the store.
// Parsing 100 MB of JSON takes seconds: the server runs these on a worker thread, never on the
// thread that serves /healthz and the agents. Synchronous, for that thread.
import { observationUploadSchema } from '../../shared/baseline.js';
import { QuicksandError } from '../../shared/errors.js';
import { parseManifest } from '../../shared/manifest.js';
import { formatIssues } from '../../shared/schema-errors.js';
import type { Synchronous } from './async-adapter.js';
import type { Manifest } from '../../shared/manifest.js';
import type { Baselines, ImageUploadResult, Images, ObservationUploadResult } from './types.js';

function json(body: Uint8Array, message: string): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw new QuicksandError('MANIFEST_UNREADABLE', message);
  }
}

/** The manifest an image upload carries, parsed and checked. */
export function parseManifestUpload(body: Uint8Array): Manifest {
  return parseManifest(json(body, 'body: expected the manifest as JSON (gunzip a .json.gz first)'), 'body');
}

export function manifestUploadResult(manifest: Manifest, replaced: boolean): ImageUploadResult {
  return { name: manifest.image.name, version: manifest.image.version, packages: manifest.packages.length, files: manifest.files.length, replaced };
}

/** What an observation upload asks of Baselines.receiveObservation, parsed and checked. */
export function parseObservationUpload(req: { hostId: string; version: number; body: Uint8Array; now: Date }): Parameters<Baselines['receiveObservation']>[0] {
  const parsed = observationUploadSchema.safeParse(json(req.body, 'body: expected JSON'));
  if (!parsed.success) throw new QuicksandError('QUERY_INVALID', `body: ${formatIssues(parsed.error).replaceAll('\n', '; ')}`);
  return {
    hostId: req.hostId,
    version: req.version,
    baseline: parsed.data.baseline,
    observation: parseManifest(parsed.data.observation, 'body.observation'),
    expected: parseManifest(parsed.data.expected, 'body.expected'),
    now: req.now,
  };
}

export function acceptManifestUpload(images: Synchronous<Images>, body: Uint8Array, now: Date): ImageUploadResult {
  const manifest = parseManifestUpload(body);
  return manifestUploadResult(manifest, images.saveManifest(manifest, now));
}

export function acceptObservationUpload(baselines: Synchronous<Baselines>, req: { hostId: string; version: number; body: Uint8Array; now: Date }): ObservationUploadResult {
  const { accepted: _accepted, ...summary } = baselines.receiveObservation(parseObservationUpload(req));
  return summary;
}
