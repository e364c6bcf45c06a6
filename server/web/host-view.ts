// The host page's pure core: findings grouped by the change set that explains them (the files
// nested under their package), and a unified diff split into lines to colour. No I/O.
import type { HostFinding } from '../../shared/api.js';

export interface ChangeSetGroup {
  /** Null: the findings no package manager run explains (hand edits). */
  id: string | null;
  tool: string | null;
  command: string | null;
  findings: HostFinding[];
}

/** Groups in order of their first finding; the unexplained ones last. */
export function groupByChangeSet(findings: readonly HostFinding[]): ChangeSetGroup[] {
  const groups = new Map<string, ChangeSetGroup>();
  const loose: HostFinding[] = [];
  for (const f of findings) {
    if (f.changeSet === null) {
      loose.push(f);
      continue;
    }
    const g = groups.get(f.changeSet.id) ?? { id: f.changeSet.id, tool: f.changeSet.tool, command: f.changeSet.command, findings: [] };
    g.findings.push(f);
    groups.set(f.changeSet.id, g);
  }
  const out = [...groups.values()];
  if (loose.length > 0) out.push({ id: null, tool: null, command: null, findings: loose });
  return out;
}

/** The files a finding carries under it (a package's files), as the agent nested them. */
export function nestedPaths(f: HostFinding, max = 200): { paths: string[]; more: number } {
  const changes = (f.detail as { changes?: Array<{ path?: unknown; kind?: unknown }> } | null)?.changes;
  const paths = Array.isArray(changes) ? changes.map((c) => (typeof c.path === 'string' ? `${typeof c.kind === 'string' ? c.kind : ''} ${c.path}`.trim() : '')).filter((p) => p !== '') : [];
  return { paths: paths.slice(0, max), more: Math.max(0, paths.length - max) };
}

export type DiffLineKind = 'file' | 'hunk' | 'add' | 'del' | 'ctx';

/** A unified diff's lines, each with its kind (bounded: a diff is at most `maxLines` lines here). */
export function diffLines(diff: string, maxLines = 2000): Array<{ kind: DiffLineKind; text: string }> {
  return diff
    .split('\n')
    .slice(0, maxLines)
    .map((text) => ({
      kind: text.startsWith('+++') || text.startsWith('---') ? 'file' : text.startsWith('@@') ? 'hunk' : text.startsWith('+') ? 'add' : text.startsWith('-') ? 'del' : 'ctx',
      text,
    }));
}

/**
 * What an agent sent, fit to show: control characters (terminal escapes, NUL, bidi overrides)
 * become visible `\u{…}` marks. HTML escaping is JSX's job; this keeps text from hiding text.
 */
export function visible(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}
