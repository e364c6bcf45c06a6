// Alerts: what was queued, delivered, given up or withdrawn, and what the throttle holds, with
// each delivery's attempts (sink, when, HTTP status, last error). Filters and the page cursor are
// in the URL; the page is the API's (GET /api/v1/alerts), read through the same function.
import type { Hono } from 'hono';
import { ALERT_STATES, alertsQuerySchema } from '../../shared/api.js';
import type { AlertsQuery } from '../../shared/api.js';
import { formatIssues } from '../../shared/schema-errors.js';
import { alertsPage } from '../admin/sinks.js';
import type { AlertsPage as Page } from '../admin/sinks.js';
import type { SessionUser } from '../store/types.js';
import type { ConsoleDeps } from './forms.js';
import { visible } from './host-view.js';
import { Layout } from './layout.js';
import { WideTable } from './table.js';
import type { Column } from './table.js';
import { signedIn } from './session.js';
import type { WebEnv } from './session.js';

const PAGE = 50;
const iso = (ms: number | null) => (ms === null ? '—' : new Date(ms).toISOString());

const HELD_COLUMNS: readonly Column<Page['held'][number]>[] = [
  { head: 'Host', cell: (h) => <a href={`/hosts/${encodeURIComponent(h.hostId)}`}><code>{visible(h.hostId)}</code></a> },
  { head: 'Why', cell: (h) => visible(h.reason) },
  { head: 'Goes out at', cell: (h) => h.until },
  { head: 'Change sets', cell: (h) => h.changeSets },
  { head: 'Sample', cell: (h) => h.findings.slice(0, 3).map((f) => visible(`${f.severity} ${f.kind} ${f.name ?? f.path ?? ''}`)).join('; ') },
];

const DELIVERY_COLUMNS: readonly Column<Page['deliveries'][number]>[] = [
  { head: 'Queued', cell: (d) => d.createdAt },
  { head: 'Host', cell: (d) => (d.hostId === null ? '—' : <a href={`/hosts/${encodeURIComponent(d.hostId)}`}>{visible(d.alert.host.hostname)}</a>) },
  { head: 'Alert', cell: (d) => visible(`${d.alert.action} ${d.alert.severity}: ${d.alert.title}`) },
  { head: 'Sink', cell: (d) => (d.sinkId === null ? visible(`none (${d.reason ?? 'no sink took it'})`) : <code>{visible(d.sinkId)}</code>) },
  { head: 'State', cell: (d) => d.state, class: (d) => (d.state === 'gave-up' ? 'pet' : d.state === 'delivered' ? 'cattle' : '') },
  { head: 'Attempts', cell: (d) => `${d.attempts}${d.state === 'pending' && d.attempts > 0 ? ` (next ${iso(d.nextAttemptAt)})` : ''}` },
  {
    head: 'Last attempt',
    cell: (d) => {
      const last = d.attemptLog[d.attemptLog.length - 1];
      return last === undefined ? '—' : visible(`${iso(last.at)}: ${last.ok ? 'ok' : 'failed'}${last.status === null ? '' : ` HTTP ${last.status}`}${last.error === null ? '' : ` — ${last.error}`}`);
    },
  },
];

function link(q: Partial<AlertsQuery>, cursor?: string): string {
  const p = new URLSearchParams();
  if (q.host !== undefined) p.set('host', q.host);
  if (q.state !== undefined) p.set('state', q.state);
  if (cursor !== undefined) p.set('cursor', cursor);
  const t = p.toString();
  return `/alerts${t === '' ? '' : `?${t}`}`;
}

export function AlertsPage(props: { session: SessionUser; page: Page; query: Partial<AlertsQuery>; error?: string }) {
  const q = props.query;
  const { deliveries, held } = props.page;
  return (
    <Layout title="Alerts" session={props.session}>
      {props.error !== undefined && <p class="error" role="alert" id="alerts-error">{props.error}</p>}
      <form method="get" action="/alerts" class="filters" aria-label="Filter alerts">
        <label>State
          <select name="state"><option value="">any</option>{ALERT_STATES.map((s) => <option value={s} selected={q.state === s}>{s === 'held' ? 'held (throttled)' : s}</option>)}</select>
        </label>
        <label>Host id<input name="host" value={q.host ?? ''} maxlength={200} /></label>
        <button type="submit">Filter</button>
        <a href="/alerts">Clear</a>
      </form>
      {held.length > 0 && (
        <>
          <h2>Held by the throttle</h2>
          <WideTable rows={held} columns={HELD_COLUMNS} />
        </>
      )}
      <h2>Deliveries</h2>
      {deliveries.length === 0 && <p>No deliveries{q.state === undefined && q.host === undefined ? ' yet' : ' match these filters'}.</p>}
      {deliveries.length > 0 && (
        <WideTable rows={deliveries} columns={DELIVERY_COLUMNS} />
      )}
      <nav aria-label="Pages of alerts">
        {q.cursor !== undefined && <a href={link(q)}>First page</a>}
        {' '}
        {props.page.next !== null && <a href={link(q, props.page.next)} rel="next">Next page</a>}
      </nav>
    </Layout>
  );
}

/** GET /alerts: every role reads it, as the API lets every role read the alerts. */
export function alertRoutes(app: Hono<WebEnv>, deps: ConsoleDeps): void {
  app.get('/alerts', async (c) => {
    const s = signedIn(c);
    if (s instanceof Response) return s;
    const given = Object.fromEntries(Object.entries(c.req.query()).filter(([k, v]) => v !== '' && k !== 'limit'));
    const r = alertsQuerySchema.safeParse({ ...given, limit: String(PAGE) });
    if (!r.success) return c.html(<AlertsPage session={s} page={{ deliveries: [], held: [], next: null }} query={{}} error={`Filters: ${formatIssues(r.error)}`} />, 400);
    return c.html(<AlertsPage session={s} page={await alertsPage(deps.store, r.data)} query={r.data} />);
  });
}
