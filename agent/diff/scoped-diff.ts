import type { FileRecord, Manifest } from '../../shared/manifest.js';
import { isUnder } from '../../shared/policy.js';
import { compareSeverity } from '../../shared/findings.js';
import { compareCodeUnits } from '../../shared/order.js';
import type { Finding, ReportScope } from '../../shared/report.js';
import { diff } from './differ.js';
import type { Observation } from '../fingerprint/observe.js';
import type { Verdict } from './differ.js';
import type { ObservedFile } from '../fingerprint/walk.js';

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
 *
 * Both sides are cut down to the scope plus the manifest's links outside it, so a batch costs
 * what it touched, not the size of the image (a 300k-path manifest took ~450 ms a batch whole):
 * the links stay because `diff` follows them (alternatives, `/bin -> usr/bin`) to find the
 * package that caused a change, and they are identical on both sides, so they find nothing.
 */
export function diffInScope(manifest: Manifest, obs: Observation, verdicts: ReadonlyMap<string, Verdict>, scope: ReportScope): Finding[] {
  const inside = inScope(scope);
  // A package-only manifest has no files to cut down; `diff` reads it as such.
  if (manifest.files.length === 0) return unnest(diff(manifest, obs, verdicts, inside), scope);
  const expected: FileRecord[] = [];
  const observed: ObservedFile[] = [];
  for (const f of manifest.files) if (inside(f.path)) expected.push(f);
  for (const f of linksOf(manifest)) {
    if (inside(f.path)) continue;
    expected.push(f);
    observed.push(f);
  }
  // `diff` takes a manifest without files for a package-only one: keep one unchanged record.
  if (expected.length === 0) {
    const anchor = manifest.files.find((f) => !inside(f.path));
    if (anchor) {
      expected.push(anchor);
      observed.push(anchor);
    }
  }
  for (const f of obs.files) if (inside(f.path)) observed.push(f);
  return unnest(diff({ ...manifest, files: expected }, { ...obs, files: observed }, verdicts), scope);
}

const links = new WeakMap<Manifest, FileRecord[]>();
function linksOf(manifest: Manifest): FileRecord[] {
  let list = links.get(manifest);
  if (!list) {
    list = manifest.files.filter((f) => f.type === 'symlink');
    links.set(manifest, list);
  }
  return list;
}

function unnest(findings: Finding[], scope: ReportScope): Finding[] {
  if (scope.packages) return findings;
  const out: Finding[] = [];
  for (const f of findings) {
    if (f.kind.startsWith('package-')) out.push(...(f.changes ?? []));
    else out.push(f);
  }
  return out.sort((a, b) => compareSeverity(a.severity, b.severity) || compareCodeUnits(a.path ?? '', b.path ?? ''));
}
