import type { Severity } from '../../shared/findings.js';
import type { Finding } from '../../shared/report.js';

/** One alert: a change set that needs someone (trigger), or a host that is cattle again (resolve). */
export interface Alert {
  action: 'trigger' | 'resolve';
  /** Stable per host and change set: PagerDuty's dedup_key, a receiver's idempotency key. */
  dedupKey: string;
  host: { id: string; hostname: string; labels: Record<string, string> };
  image: { name: string; version: string };
  /** The most severe severity in force among what needs attention (resolve: of what it resolves). */
  severity: Exclude<Severity, 'info'>;
  title: string;
  /** Top-level findings of the change set, most severe first, at most ALERT_FINDINGS_SHOWN. */
  findings: AlertFinding[];
  counts: { findings: number; files: number };
  at: string;
  /** The host's page on the server, when the server knows its own public URL. */
  link?: string;
}

export interface AlertFinding {
  kind: Finding['kind'];
  severity: Severity;
  ecosystem?: string;
  name?: string;
  path?: string;
  before?: Finding['before'];
  after?: Finding['after'];
  reason?: string;
  /** Paths nested under it (the files a package install brought). */
  files: number;
}

export const ALERT_FINDINGS_SHOWN = 20;

/** A finding the way a person reads it in one line: `package-added dpkg curl 7.88 (31 files)`. */
export function describeFinding(f: AlertFinding): string {
  const what = f.kind.startsWith('package-')
    ? `${f.ecosystem ?? ''} ${f.name ?? ''} ${versionChange(f)}`.replace(/\s+/g, ' ').trim()
    : (f.path ?? '');
  const files = f.files > 0 ? ` (${f.files} files)` : '';
  return `${f.kind} ${what}${files}${f.reason ? `: ${f.reason}` : ''}`;
}

function versionChange(f: AlertFinding): string {
  const v = (x: Finding['before']): string => (typeof x === 'string' ? x : '');
  if (f.kind === 'package-changed') return `${v(f.before)} -> ${v(f.after)}`;
  return v(f.after) || v(f.before);
}
