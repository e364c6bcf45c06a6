// The fleet: cattle / pet / stale, the trend of pets, the image cohorts, and the hosts the URL's
// filters keep, a page at a time, with the CSV of exactly those rows.
import type { HostStatusName, HostSummary } from '../../shared/api.js';
import { HOST_STATUSES } from '../../shared/api.js';
import { SEVERITIES } from '../../shared/findings.js';
import type { SessionUser } from '../store/types.js';
import { cohorts, filtersQuery, paginate, petTrend, trendPoints } from './fleet-view.js';
import type { FleetFilters } from './fleet-view.js';
import { visible } from './host-view.js';
import { Layout } from './layout.js';

const pct = (x: number): string => `${Math.round(x * 100)}%`;

function Trend(props: { hosts: readonly HostSummary[]; now: Date }) {
  const trend = petTrend(props.hosts, props.now);
  const last = trend[trend.length - 1]!;
  return (
    <figure>
      <svg role="img" aria-labelledby="trend-title" viewBox="-4 -4 308 88" width="100%" height="120" preserveAspectRatio="none">
        <title id="trend-title">{`Pets over the last ${trend.length} days: ${trend[0]!.pets} on ${trend[0]!.day}, ${last.pets} on ${last.day}`}</title>
        <polyline fill="none" stroke="#a10000" stroke-width="2" points={trendPoints(trend, 300, 80)} />
      </svg>
      <figcaption>Pets of today by the day they became one, last 30 days ({trend[0]!.day} to {last.day}).</figcaption>
    </figure>
  );
}

export function FleetPage(props: { session: SessionUser; all: readonly HostSummary[]; kept: readonly HostSummary[]; filters: FleetFilters; counts: Record<HostStatusName, number>; now: Date; error?: string }) {
  const f = props.filters;
  const page = paginate(props.kept, f.page);
  const Field = (p: { name: keyof FleetFilters; label: string }) => (
    <label>
      {p.label}
      <input name={p.name} value={f[p.name] === undefined ? '' : String(f[p.name])} maxlength={200} />
    </label>
  );
  return (
    <Layout title="Fleet" session={props.session}>
      <section aria-label="Counts" class="counts">
        <div><span class="cattle">Cattle</span> {props.counts.cattle}</div>
        <div><span class="pet">Pets</span> {props.counts.pet}</div>
        <div><span class="stale">Stale</span> {props.counts.stale}</div>
        <div><span class="enrolled">Never reported</span> {props.counts.enrolled}</div>
      </section>
      <Trend hosts={props.all} now={props.now} />
      <h2>Images and versions</h2>
      <table>
        <thead><tr><th scope="col">Image</th><th scope="col">Version</th><th scope="col">Hosts</th><th scope="col">Pets</th><th scope="col">Pet share</th></tr></thead>
        <tbody>
          {cohorts(props.all).slice(0, 20).map((g) => (
            <tr><td><a href={`/${filtersQuery({ image: g.image })}`}>{visible(g.image)}</a></td><td><a href={`/${filtersQuery({ image: g.image, version: g.version })}`}>{visible(g.version)}</a></td><td>{g.hosts}</td><td>{g.pets}</td><td>{pct(g.petShare)}</td></tr>
          ))}
        </tbody>
      </table>
      <h2>Hosts</h2>
      {props.error !== undefined && <p class="error" role="alert">{`Filters: ${props.error}`}</p>}
      <form method="get" action="/" class="filters" aria-label="Filter hosts">
        <label>Status
          <select name="status"><option value="">any</option>{HOST_STATUSES.map((s) => <option value={s} selected={f.status === s}>{s}</option>)}</select>
        </label>
        <Field name="image" label="Image" />
        <Field name="version" label="Version" />
        <Field name="label" label="Label (key=value)" />
        <label>Severity at least
          <select name="severity"><option value="">any</option>{SEVERITIES.map((s) => <option value={s} selected={f.severity === s}>{s}</option>)}</select>
        </label>
        <label>Watch
          <select name="watch"><option value="">any</option><option value="degraded" selected={f.watch === 'degraded'}>degraded</option></select>
        </label>
        <Field name="q" label="Text" />
        <button type="submit">Filter</button>
        <a href={`/fleet.csv${filtersQuery({ ...f, page: 1 })}`}>CSV of these {props.kept.length} hosts</a>
      </form>
      <table class="wide">
        <thead><tr><th scope="col">Host</th><th scope="col">Status</th><th scope="col">Image</th><th scope="col">Open</th><th scope="col">Pet since</th><th scope="col">Last report</th><th scope="col">Watch</th></tr></thead>
        <tbody>
          {page.rows.map((h) => (
            <tr>
              <td><a href={`/hosts/${encodeURIComponent(h.id)}`}>{visible(h.displayName)}</a></td>
              <td class={h.status}>{h.status}</td>
              <td>{h.image === null ? '—' : visible(`${h.image.name} ${h.image.version}`)}</td>
              <td>{h.openFindings}</td>
              <td>{h.petSince ?? '—'}</td>
              <td>{h.lastReportAt ?? 'never'}</td>
              <td>{h.watch === null ? '—' : h.watch.state === 'ok' ? 'ok' : visible(`degraded: ${h.watch.reason ?? ''}`)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <nav aria-label="Pages">
        {page.page > 1 && <a href={`/${filtersQuery(f, { page: String(page.page - 1) })}`} rel="prev">Previous</a>}
        {` Page ${page.page} of ${page.pages} (${props.kept.length} hosts) `}
        {page.page < page.pages && <a href={`/${filtersQuery(f, { page: String(page.page + 1) })}`} rel="next">Next</a>}
      </nav>
    </Layout>
  );
}
