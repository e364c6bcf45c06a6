export const FINDING_KINDS = [
  'package-added',
  'package-removed',
  'package-changed',
  'file-added',
  'file-removed',
  'file-modified',
  'file-metadata',
] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];

// Ordered from most to least severe; `SEVERITIES.indexOf` ranks them.
export const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'] as const;
export type Severity = (typeof SEVERITIES)[number];

export const ECOSYSTEMS = ['dpkg', 'rpm', 'apk', 'pip', 'gem', 'cpan', 'npm'] as const;
export type Ecosystem = (typeof ECOSYSTEMS)[number];

export function compareSeverity(a: Severity, b: Severity): number {
  return SEVERITIES.indexOf(a) - SEVERITIES.indexOf(b);
}

export function maxSeverity(a: Severity, b: Severity): Severity {
  return compareSeverity(a, b) <= 0 ? a : b;
}

/**
 * Findings the server raises about a host itself, never sent by an agent: `report-chain-broken`
 * (reports lost or rewritten) and `identity-cloned` (one agent token used by two machines).
 */
export const SERVER_FINDING_KINDS = ['report-chain-broken', 'identity-cloned'] as const;
export type ServerFindingKind = (typeof SERVER_FINDING_KINDS)[number];
