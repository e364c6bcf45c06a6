import type { Finding } from '../../shared/report.js';
import type { ChangeSet, PackageEvent } from './types.js';
import { compareTimes } from './types.js';

function explains(e: PackageEvent, f: Finding): boolean {
  if (e.ecosystem !== f.ecosystem || e.name !== f.name) return false;
  switch (f.kind) {
    case 'package-added':
    case 'package-changed':
      // The operation that brought the version the host has now.
      return e.action !== 'remove' && (e.after === undefined || e.after === f.after);
    case 'package-removed':
      return e.action === 'remove';
    default:
      return false;
  }
}

/**
 * Names, on each package finding, the change set that explains it: the latest recorded
 * operation that left the package as it is now (installed this version, or removed it). The
 * files under the finding share its change set. Returns the change sets used, oldest first. Pure.
 */
export function attributeChangeSets(findings: Finding[], changeSets: readonly ChangeSet[]): ChangeSet[] {
  const ordered = [...changeSets].sort((a, b) => compareTimes(a.start, b.start));
  const used = new Map<string, ChangeSet>();
  for (const f of findings) {
    if (!f.kind.startsWith('package-')) continue;
    let match: ChangeSet | undefined;
    for (const cs of ordered) if (cs.events.some((e) => explains(e, f))) match = cs;
    if (!match) continue;
    f.changeSet = match.id;
    for (const c of f.changes ?? []) c.changeSet = match.id;
    used.set(match.id, match);
  }
  return [...used.values()];
}
