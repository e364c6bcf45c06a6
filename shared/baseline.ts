// A host's baseline versions: when an analyst re-baselines a host, its current observation becomes
// its expected state, kept on the server as a new manifest version over the image's. The agent
// uploads its observation on request and later fetches the version to scan against. Both
// exchanges authenticate with the agent's own token.
import { z } from 'zod';
import { manifestSchema } from './manifest.js';

export const BASELINE_SCHEMA = 'quicksand.baseline/v1';

/**
 * Where a version stands: waiting for the agent's observation, derived and ready to fetch,
 * replaced by a later re-baseline before its observation came, or (made before versions held
 * manifests) only the accepted findings.
 */
export const BASELINE_STATES = ['awaiting-observation', 'ready', 'superseded', 'accepted-only'] as const;
export type BaselineState = (typeof BASELINE_STATES)[number];

const version = z.number().int().positive();

/**
 * `POST /api/v1/agent/baselines/:version/observation`: what the host holds now (`observation`, a
 * manifest of its root under the expected manifest's policy) and what it scans against now
 * (`expected`, the base the reported findings were computed from; `baseline` its version when it
 * is one of the server's). The manifests are checked with `parseManifest` for readable errors.
 */
export const observationUploadSchema = z.strictObject({
  baseline: version.nullable(),
  observation: z.unknown(),
  expected: z.unknown(),
});
export type ObservationUpload = z.infer<typeof observationUploadSchema>;

/** `GET /api/v1/agent/baseline`: the version a host scans against from now on. */
export const hostBaselineSchema = z.strictObject({
  schema: z.literal(BASELINE_SCHEMA),
  host: z.string().min(1),
  version,
  /** The image the host was built from: the root of the version chain. */
  image: z.strictObject({ name: z.string().min(1), version: z.string().min(1) }),
  /** What the version extends: the image's manifest (baseline null) or an earlier version. */
  parent: z.strictObject({ baseline: version.nullable(), source: z.enum(['image', 'baseline', 'agent']) }),
  createdAt: z.iso.datetime(),
  manifest: manifestSchema,
});
export type HostBaseline = z.infer<typeof hostBaselineSchema>;

/** A version as the API lists it (`GET /hosts/:id/baselines`); one version adds its `manifest`. */
export interface BaselineSummary {
  version: number;
  state: BaselineState;
  image: { name: string | null; version: string | null };
  parent: { baseline: number | null; source: 'image' | 'baseline' | 'agent' } | null;
  accepted: unknown;
  packages: number | null;
  files: number | null;
  notes: string[];
  createdAt: string;
  createdBy: string;
  readyAt: string | null;
}
