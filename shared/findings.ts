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
