// The audit log, newest page first, filtered by action and target (kept in the URL).
import type { AuditPage as Page, AuditQuery } from '../../shared/api.js';
import type { SessionUser } from '../store/types.js';
import { visible } from './host-view.js';
import { Layout } from './layout.js';

export function AuditPage(props: { session: SessionUser; page: Page; query: AuditQuery; error?: string }) {
  const q = props.query;
  const older = props.page.older === null ? null : new URLSearchParams({ ...(q.action === undefined ? {} : { action: q.action }), ...(q.target === undefined ? {} : { target: q.target }), before: String(props.page.older) });
  return (
    <Layout title="Audit log" session={props.session}>
      {props.error !== undefined && <p class="error" role="alert">{props.error}</p>}
      <form method="get" action="/audit" class="filters" aria-label="Filter the audit log">
        <label>Action<input name="action" value={q.action ?? ''} maxlength={100} /></label>
        <label>Target<input name="target" value={q.target ?? ''} maxlength={300} /></label>
        <button type="submit">Filter</button>
      </form>
      <table class="wide">
        <thead><tr><th scope="col">At</th><th scope="col">Who</th><th scope="col">Role</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Reason</th></tr></thead>
        <tbody>
          {[...props.page.entries].reverse().map((e) => (
            <tr><td>{e.at}</td><td>{visible(e.actorName ?? e.actor)}</td><td>{e.role}</td><td>{e.action}</td><td><code>{visible(e.target)}</code></td><td>{visible(e.reason ?? '')}</td></tr>
          ))}
        </tbody>
      </table>
      {older !== null && <a href={`/audit?${older.toString()}`}>Older entries</a>}
    </Layout>
  );
}
