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
import { signedIn } from './session.js';
import type { WebEnv } from './session.js';

const PAGE = 50;
const iso = (ms: number | null) => (ms === null ? '—' : new Date(ms).toISOString());

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
          <table class="wide">
            <thead><tr><th scope="col">Host</th><th scope="col">Why</th><th scope="col">Goes out at</th><th scope="col">Change sets</th><th scope="col">Sample</th></tr></thead>
            <tbody>{held.map((h) => (
              <tr><td><a href={`/hosts/${encodeURIComponent(h.hostId)}`}><code>{visible(h.hostId)}</code></a></td><td>{visible(h.reason)}</td><td>{h.until}</td><td>{h.changeSets}</td>
                <td>{h.findings.slice(0, 3).map((f) => visible(`${f.severity} ${f.kind} ${f.name ?? f.path ?? ''}`)).join('; ')}</td></tr>
            ))}</tbody>
          </table>
        </>
      )}
      <h2>Deliveries</h2>
      {deliveries.length === 0 && <p>No deliveries{q.state === undefined && q.host === undefined ? ' yet' : ' match these filters'}.</p>}
      {deliveries.length > 0 && (
        <table class="wide">
          <thead><tr><th scope="col">Queued</th><th scope="col">Host</th><th scope="col">Alert</th><th scope="col">Sink</th><th scope="col">State</th><th scope="col">Attempts</th><th scope="col">Last attempt</th></tr></thead>
          <tbody>{deliveries.map((d) => {
            const last = d.attemptLog[d.attemptLog.length - 1];
            return (
              <tr>
                <td>{d.createdAt}</td>
                <td>{d.hostId === null ? '—' : <a href={`/hosts/${encodeURIComponent(d.hostId)}`}>{visible(d.alert.host.hostname)}</a>}</td>
                <td>{visible(`${d.alert.action} ${d.alert.severity}: ${d.alert.title}`)}</td>
                <td>{d.sinkId === null ? visible(`none (${d.reason ?? 'no sink took it'})`) : <code>{visible(d.sinkId)}</code>}</td>
                <td class={d.state === 'gave-up' ? 'pet' : d.state === 'delivered' ? 'cattle' : ''}>{d.state}</td>
                <td>{d.attempts}{d.state === 'pending' && d.attempts > 0 ? ` (next ${iso(d.nextAttemptAt)})` : ''}</td>
                <td>{last === undefined ? '—' : visible(`${iso(last.at)}: ${last.ok ? 'ok' : 'failed'}${last.status === null ? '' : ` HTTP ${last.status}`}${last.error === null ? '' : ` — ${last.error}`}`)}</td>
              </tr>
            );
          })}</tbody>
        </table>
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
