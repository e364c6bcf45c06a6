// Pure classification of a host from its open findings: no database, no clock of its own.
import { SEVERITIES } from '../shared/findings.js';
import type { Severity } from '../shared/findings.js';
import type { SeverityCounts } from '../shared/report.js';
import type { HostStatusName } from '../shared/api.js';

export type HostStatus = HostStatusName;

// One tampered binary outweighs any number of edited configs; info never counts.
const WEIGHTS: Record<Severity, number> = { critical: 100, high: 10, medium: 3, low: 1, info: 0 };

export function driftScore(counts: SeverityCounts): number {
  return SEVERITIES.reduce((sum, s) => sum + counts[s] * WEIGHTS[s], 0);
}

/** The open findings that count toward a pet: those above info. */
export function openAboveInfo(counts: SeverityCounts): number {
  return counts.critical + counts.high + counts.medium + counts.low;
}

/** cattle: no open finding above info (`open`, as openAboveInfo counts them). */
export function statusOf(open: number): 'cattle' | 'pet' {
  return open > 0 ? 'pet' : 'cattle';
}

/**
 * A host is stale when its last report is older than `staleAfterMs`. One that never sent one is
 * `enrolled` — unless a finding of the server's own (identity-cloned) already made it a pet.
 */
export function effectiveStatus(stored: HostStatus, lastReportAt: string | null, now: Date, staleAfterMs: number): HostStatus {
  if (lastReportAt === null) return stored === 'pet' ? 'pet' : 'enrolled';
  if (now.getTime() - Date.parse(lastReportAt) > staleAfterMs) return 'stale';
  return stored;
}

/** Identity of a finding across reports: the same package or path with the same kind. */
export function findingKey(f: { kind: string; ecosystem?: string | undefined; name?: string | undefined; path?: string | undefined; rawPath?: string | undefined }): string {
  return [f.kind, f.ecosystem ?? '', f.name ?? '', f.rawPath !== undefined ? `b64:${f.rawPath}` : (f.path ?? '')].join('|');
}
