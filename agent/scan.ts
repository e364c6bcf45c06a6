import { hostname } from 'node:os';
import type { Manifest } from '../shared/manifest.js';
import { REPORT_SCHEMA, summarize } from '../shared/report.js';
import type { ChangeSetInfo, Finding, Report } from '../shared/report.js';
import { diff, selectForVerification } from './differ.js';
import { observe } from './observe.js';
import type { FingerprintOptions } from './fingerprint.js';
import type { ChangeSet, Collector } from './collectors/types.js';
import type { Root } from './root.js';
import { verifyAgainstPackages } from './verify.js';

export interface ScanOptions extends FingerprintOptions {
  /** The package ecosystems to read; all of them unless a caller (a benchmark) narrows it. */
  collectors?: readonly Collector[];
  now?: () => Date;
  hostname?: string;
}

/** Observes `root`, verifies package-owned files, diffs against `manifest`: one report. */
export async function scanRoot(root: Root, manifest: Manifest, opts: ScanOptions = {}): Promise<Report> {
  const now = opts.now ?? (() => new Date());
  const started = now();
  const t0 = performance.now();
  const obs = await observe(root, manifest.policy, opts);
  const verdicts = await verifyAgainstPackages(root, selectForVerification(manifest, obs), obs.owned);
  const findings = diff(manifest, obs, verdicts);
  const changeSets = changeSetsNamed(findings, obs.changeSets ?? []);
  return {
    schema: REPORT_SCHEMA,
    image: { name: manifest.image.name, version: manifest.image.version },
    host: { hostname: opts.hostname ?? hostname(), root: root.dir === '' ? '/' : root.dir },
    scannedAt: started.toISOString(),
    summary: summarize(findings),
    stats: { files: obs.files.length, packages: obs.packages.length, bytesHashed: obs.bytesHashed, durationMs: Math.round(performance.now() - t0) },
    findings,
    ...(changeSets.length > 0 ? { changeSets } : {}),
    warnings: obs.warnings,
  };
}

/** The change sets that findings name, as a report carries them. Pure; event reports use it too. */
export function changeSetsNamed(findings: readonly Finding[], changeSets: readonly ChangeSet[]): ChangeSetInfo[] {
  const named = new Set(findings.map((f) => f.changeSet).filter((id): id is string => id !== undefined));
  return changeSets.filter((cs) => named.has(cs.id)).map(({ events, ...cs }) => ({ ...cs, packages: events.length }));
}
