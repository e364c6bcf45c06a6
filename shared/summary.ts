// A report's name and summary, without its schema: the scan path builds reports and never
// needs zod to do it (the server and the tests parse them).
import { maxSeverity } from './findings.js';
import type { Severity } from './findings.js';

/** Findings by severity. */
export type SeverityCounts = Record<Severity, number>;

/** A report's summary (the report schema's `summary`). */
export interface Summary {
  status: 'clean' | 'drift';
  counts: SeverityCounts;
  findings: number;
  files: number;
  changeSets: number;
}

/** What counting reads of a finding (a report's `Finding` is one). */
export interface CountedFinding {
  severity: Severity;
  path?: string | undefined;
  changeSet?: string | undefined;
  changes?: readonly CountedFinding[] | undefined;
}

export const REPORT_SCHEMA = 'quicksand.report/v1';

export function emptyCounts(): SeverityCounts {
  return { critical: 0, high: 0, medium: 0, low: 0, info: 0 };
}

/**
 * Counts change sets by severity: the findings one operation caused (one apt command with its
 * packages and their files) count once, at their highest severity; a finding no change set
 * explains counts on its own. `findings` is the number of top-level findings, `files` the
 * number of paths they cover.
 */
export function summarize(findings: readonly CountedFinding[]): Summary {
  const counts = emptyCounts();
  let files = 0;
  const countFiles = (f: CountedFinding): void => {
    if (f.path !== undefined) files++;
    f.changes?.forEach(countFiles);
  };
  const groups = new Map<string, Severity>();
  let loose = 0;
  for (const f of findings) {
    countFiles(f);
    if (f.changeSet === undefined) {
      counts[f.severity]++;
      loose++;
      continue;
    }
    const seen = groups.get(f.changeSet);
    groups.set(f.changeSet, seen === undefined ? f.severity : maxSeverity(seen, f.severity));
  }
  for (const severity of groups.values()) counts[severity]++;
  const drift = counts.critical + counts.high + counts.medium + counts.low > 0;
  return { status: drift ? 'drift' : 'clean', counts, findings: findings.length, files, changeSets: loose + groups.size };
}
