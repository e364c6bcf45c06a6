import type { ScanWarning } from '../shared/report.js';
import type { Policy } from '../shared/policy.js';
import type { PackageRecord } from '../shared/manifest.js';
import { COLLECTORS } from './collectors/index.js';
import type { Collector, OwnedFile } from './collectors/types.js';
import { fingerprint } from './fingerprint.js';
import type { FingerprintOptions, WalkStats } from './fingerprint.js';
import type { Observation } from './differ.js';
import type { Root } from './root.js';

export interface ObserveResult extends Observation {
  warnings: ScanWarning[];
  bytesHashed: number;
  stats: WalkStats;
}

export interface CollectedPackages {
  packages: PackageRecord[];
  owned: Map<string, OwnedFile>;
  warnings: ScanWarning[];
}

/** Reads every package database of the root. */
export async function collectPackages(root: Root, collectors: readonly Collector[] = COLLECTORS): Promise<CollectedPackages> {
  const packages: PackageRecord[] = [];
  const owned = new Map<string, OwnedFile>();
  const warnings: ScanWarning[] = [];
  // Read concurrently (their waits are file reads), merged in registry order: the first
  // collector that owns a path keeps it, as before.
  const results = await Promise.all(collectors.map((c) => c.collect(root)));
  for (const got of results) {
    if (!got) continue;
    packages.push(...got.packages);
    warnings.push(...got.warnings);
    for (const [path, file] of got.owned) if (!owned.has(path)) owned.set(path, file);
  }
  return { packages, owned, warnings };
}

/** Reads every package database, then fingerprints the tracked paths, all into memory. */
export async function observe(root: Root, policy: Policy, opts: FingerprintOptions & { collectors?: readonly Collector[] } = {}): Promise<ObserveResult> {
  const { packages, owned, warnings } = await collectPackages(root, opts.collectors);
  const fp = await fingerprint(root, policy, opts);
  warnings.push(...fp.warnings);
  return { packages, owned, files: fp.files, warnings, bytesHashed: fp.bytesHashed, stats: fp.stats };
}
