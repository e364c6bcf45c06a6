// The audit log, newest page first, filtered by actor, action, host, target and time range; the
// filters are in the URL (a view can be shared) and carried to the older pages.
import type { AuditPage as Page, AuditQuery } from '../../shared/api.js';
import type { SessionUser } from '../store/types.js';
import { visible } from './host-view.js';
import { Layout } from './layout.js';
import { WideTable } from './table.js';
import type { Column } from './table.js';

const AUDIT_COLUMNS: readonly Column<Page['entries'][number]>[] = [
  { head: 'At', cell: (e) => e.at },
  { head: 'Who', cell: (e) => visible(e.actorName ?? e.actor) },
  { head: 'Role', cell: (e) => e.role },
  { head: 'Action', cell: (e) => e.action },
  { head: 'Target', cell: (e) => <code>{visible(e.target)}</code> },
  { head: 'Reason', cell: (e) => visible(e.reason ?? '') },
];

/** Entries a page unless the URL says `limit`. */
export const AUDIT_PAGE = 100;

const FILTERS = [
  { name: 'actor', label: 'Who (user, token name or id)', max: 200 },
  { name: 'action', label: 'Action', max: 100 },
  { name: 'host', label: 'Host id', max: 200 },
  { name: 'target', label: 'Target', max: 300 },
  { name: 'from', label: 'From (UTC, 2026-12-01 or …T10:00:00Z)', max: 40 },
  { name: 'to', label: 'Before (UTC)', max: 40 },
] as const;

/** The URL query of the filters given (and `extra`), in a stable order. */
export function auditLink(q: Partial<AuditQuery>, extra: Record<string, string> = {}): string {
  const p = new URLSearchParams();
  for (const f of FILTERS) if (q[f.name] !== undefined) p.set(f.name, q[f.name]!);
  if (q.limit !== undefined && q.limit !== AUDIT_PAGE) p.set('limit', String(q.limit));
  for (const [k, v] of Object.entries(extra)) p.set(k, v);
  const text = p.toString();
  return `/audit${text === '' ? '' : `?${text}`}`;
}

export function AuditPage(props: { session: SessionUser; page: Page; query: Partial<AuditQuery>; error?: string }) {
  const q = props.query;
  return (
    <Layout title="Audit log" session={props.session}>
      {props.error !== undefined && <p class="error" role="alert" id="audit-error">{props.error}</p>}
      <form method="get" action="/audit" class="filters" aria-label="Filter the audit log">
        {FILTERS.map((f) => (
          <label>{f.label}<input name={f.name} value={q[f.name] ?? ''} maxlength={f.max} {...(props.error !== undefined && props.error.includes(`${f.name}:`) ? { 'aria-invalid': 'true', 'aria-describedby': 'audit-error' } : {})} /></label>
        ))}
        <button type="submit">Filter</button>
        <a href="/audit">Clear</a>
      </form>
      <WideTable rows={[...props.page.entries].reverse()} columns={AUDIT_COLUMNS} />
      {props.page.entries.length === 0 && <p>No entries.</p>}
      <nav aria-label="Pages of the audit log">
        {q.before !== undefined && <a href={auditLink(q)}>Newest entries</a>}
        {' '}
        {props.page.older !== null && <a href={auditLink(q, { before: String(props.page.older) })} rel="next">Older entries</a>}
      </nav>
    </Layout>
  );
}
