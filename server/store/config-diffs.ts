// What the store keeps of a config file's text: the unified diff of its two sides (or why there
// is none), never the texts themselves. Every backend's ingest calls `reportForStore` before it
// writes anything of a report. Pure.
import type { Finding, Report } from '../../shared/report.js';
import { REPORT_CONFIG_TEXT_BUDGET } from '../../shared/config-text.js';
import { unifiedDiff } from '../../shared/unified-diff.js';

/** The longest diff kept per finding; a longer one is cut at a line and says so in its note. */
export const CONFIG_DIFF_MAX_CHARS = 128 * 1024;

/** A finding as stored: `text` became `configDiff` and/or `configDiffNote`. */
export type StoredFinding = Omit<Finding, 'text' | 'changes'> & {
  /** Unified diff (`--- a/path`, `+++ b/path`, `@@` hunks) of the masked texts. */
  configDiff?: string;
  /** Why there is no diff, or what to know about it (cut short, shown as one replacement). */
  configDiffNote?: string;
  changes?: StoredFinding[];
};

export type StoredReport = Omit<Report, 'findings' | 'containers'> & {
  findings: StoredFinding[];
  containers?: Array<Omit<NonNullable<Report['containers']>[number], 'findings'> & { findings: StoredFinding[] }>;
};

/**
 * The report with every finding's config text turned into its diff. The agent keeps a report's
 * text within REPORT_CONFIG_TEXT_BUDGET; text past that (from an agent that does not) is noted,
 * not diffed, so a report costs bounded work whatever it carries.
 */
export function reportForStore(report: Report): StoredReport {
  // Most reports carry no config text: stored as they came, without a copy of every finding.
  if (!report.findings.some(carriesText) && !(report.containers ?? []).some((c) => c.findings.some(carriesText))) return report as StoredReport;
  const budget = { left: REPORT_CONFIG_TEXT_BUDGET };
  const { containers, ...rest } = report;
  return {
    ...rest,
    findings: report.findings.map((f) => storedFinding(f, budget)),
    ...(containers === undefined ? {} : { containers: containers.map((c) => ({ ...c, findings: c.findings.map((f) => storedFinding(f, budget)) })) }),
  };
}

const carriesText = (f: Finding): boolean => f.text !== undefined || (f.changes ?? []).some(carriesText);

function storedFinding(f: Finding, budget: { left: number }): StoredFinding {
  const { text, changes, ...rest } = f;
  const out: StoredFinding = rest;
  if (changes !== undefined) out.changes = changes.map((c) => storedFinding(c, budget));
  if (text === undefined) return out;
  if ('omitted' in text) return { ...out, configDiffNote: text.why };
  const size = (text.before?.length ?? 0) + (text.after?.length ?? 0);
  if (size > budget.left) return { ...out, configDiffNote: `no diff: the report carried more config text than its cap of ${REPORT_CONFIG_TEXT_BUDGET} characters` };
  budget.left -= size;
  const sides = { 'file-added': ['after'], 'file-removed': ['before'], 'file-modified': ['before', 'after'] } as Record<string, string[] | undefined>;
  const needed = sides[f.kind];
  if (needed === undefined || f.path === undefined || !needed.every((s) => text[s as 'before' | 'after'] !== undefined)) {
    return { ...out, configDiffNote: `no diff: a ${f.kind} finding needs the text ${needed?.join(' and ') ?? 'of no side'}, the agent sent ${Object.keys(text).join(' and ') || 'none'}` };
  }
  const before = f.kind === 'file-added' ? null : text.before!;
  const after = f.kind === 'file-removed' ? null : text.after!;
  const d = unifiedDiff(before, after, f.path, { maxChars: CONFIG_DIFF_MAX_CHARS });
  if (d.hunks.total === 0 && before !== null && after !== null) {
    return { ...out, configDiffNote: 'no diff: the texts are the same once secrets are masked: only a masked value changed' };
  }
  const notes: string[] = [];
  if (d.approximate) notes.push('too many lines changed for a line-by-line diff: the changed part is shown as one replacement');
  if (d.truncated) notes.push(`diff cut at ${CONFIG_DIFF_MAX_CHARS} characters: ${d.hunks.shown} of ${d.hunks.total} hunks shown`);
  return { ...out, configDiff: d.text, ...(notes.length > 0 ? { configDiffNote: notes.join('; ') } : {}) };
}
