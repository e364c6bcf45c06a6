import type { Manifest } from '../shared/manifest.js';
import { isUnder } from '../shared/policy.js';
import { compareSeverity } from '../shared/findings.js';
import type { Finding, ReportScope } from '../shared/report.js';
import { diff } from './differ.js';
import type { Observation, Verdict } from './differ.js';
import type { ObservedFile } from './fingerprint.js';

/** True when `path` is one of `scope.paths` or lies in (or is) one of `scope.subtrees`. */
export function inScope(scope: ReportScope): (path: string) => boolean {
  const exact = new Set(scope.paths);
  const subtrees = [...scope.subtrees];
  return (path) => exact.has(path) || subtrees.some((dir) => isUnder(path, dir));
}

/**
 * The findings of `diff` for the paths in `scope` only. `obs.files` holds what was fingerprinted
 * again (inside the scope); every path outside the scope is taken to be as the manifest says, so
 * `diff` itself stays the single source of severities and nesting and finds nothing out there.
 * Without `scope.packages` the package findings are left out (nobody read the package databases
 * for this batch) and the file findings they carried stand on their own, `owner` and severity
 * still decided against the package state in `obs.packages`.
 */
export function diffInScope(manifest: Manifest, obs: Observation, verdicts: ReadonlyMap<string, Verdict>, scope: ReportScope): Finding[] {
  const inside = inScope(scope);
  const files: ObservedFile[] = [];
  for (const f of manifest.files) if (!inside(f.path)) files.push(f);
  for (const f of obs.files) if (inside(f.path)) files.push(f);
  const findings = diff(manifest, { ...obs, files }, verdicts);
  if (scope.packages) return findings;
  const out: Finding[] = [];
  for (const f of findings) {
    if (f.kind.startsWith('package-')) out.push(...(f.changes ?? []));
    else out.push(f);
  }
  return out.sort((a, b) => compareSeverity(a.severity, b.severity) || (a.path ?? '').localeCompare(b.path ?? ''));
}
