// The fleet: cattle / pet / stale, the trend of pets, the image cohorts, and the hosts the URL's
// filters keep, a page at a time, with the CSV of exactly those rows.
import type { HostStatusName, HostSummary } from '../../shared/api.js';
import { HOST_STATUSES } from '../../shared/api.js';
import { SEVERITIES } from '../../shared/findings.js';
import type { SessionUser } from '../store/types.js';
import { filtersQuery, trendPoints } from './fleet-view.js';
import type { Cohort, FleetFilters } from './fleet-view.js';
import { visible } from './host-view.js';
import { Layout } from './layout.js';
import { WideTable } from './table.js';
import type { Column } from './table.js';

const FLEET_COLUMNS: readonly Column<HostSummary>[] = [
  { head: 'Host', cell: (h) => <a href={`/hosts/${encodeURIComponent(h.id)}`}>{visible(h.displayName)}</a> },
  { head: 'Status', cell: (h) => h.status, class: (h) => h.status },
  { head: 'Image', cell: (h) => (h.image === null ? '—' : visible(`${h.image.name} ${h.image.version}`)) },
  { head: 'Open', cell: (h) => h.openFindings },
  { head: 'Pet since', cell: (h) => h.petSince ?? '—' },
  { head: 'Last report', cell: (h) => h.lastReportAt ?? 'never' },
  { head: 'Watch', cell: (h) => (h.watch === null ? '—' : h.watch.state === 'ok' ? 'ok' : visible(`degraded: ${h.watch.reason ?? ''}`)) },
];

const pct = (x: number): string => `${Math.round(x * 100)}%`;

function Trend(props: { trend: ReadonlyArray<{ day: string; pets: number }> }) {
  const { trend } = props;
  const last = trend[trend.length - 1]!;
  return (
    <figure>
      <svg role="img" aria-labelledby="trend-title" viewBox="-4 -4 308 88" width="100%" height="120" preserveAspectRatio="none">
        <title id="trend-title">{`Pets over the last ${trend.length} days: ${trend[0]!.pets} on ${trend[0]!.day}, ${last.pets} on ${last.day}`}</title>
        <polyline fill="none" stroke="#a10000" stroke-width="2" points={trendPoints(trend, 300, 80)} />
      </svg>
      <figcaption>Pets at the end of each day, from the status history: last {trend.length} days ({trend[0]!.day} to {last.day}).</figcaption>
    </figure>
  );
}

/** What the fleet page shows: the store's aggregates over the fleet, and one page of the hosts the filters keep. */
export interface FleetData {
  counts: Record<HostStatusName, number>;
  cohorts: readonly Cohort[];
  trend: ReadonlyArray<{ day: string; pets: number }>;
  /** The page's hosts, of `total` the filters keep. */
  hosts: readonly HostSummary[];
  total: number;
  page: { page: number; pages: number };
}

export function FleetPage(props: { session: SessionUser; data: FleetData; filters: FleetFilters; error?: string }) {
  const f = props.filters;
  const { data } = props;
  const page = data.page;
  const Field = (p: { name: keyof FleetFilters; label: string }) => (
    <label>
      {p.label}
      <input name={p.name} value={f[p.name] === undefined ? '' : String(f[p.name])} maxlength={200} />
    </label>
  );
  return (
    <Layout title="Fleet" session={props.session}>
      <section aria-label="Counts" class="counts">
        <div><span class="cattle">Cattle</span> {data.counts.cattle}</div>
        <div><span class="pet">Pets</span> {data.counts.pet}</div>
        <div><span class="stale">Stale</span> {data.counts.stale}</div>
        <div><span class="enrolled">Never reported</span> {data.counts.enrolled}</div>
      </section>
      <Trend trend={data.trend} />
      <h2>Images and versions</h2>
      <table>
        <thead><tr><th scope="col">Image</th><th scope="col">Version</th><th scope="col">Hosts</th><th scope="col">Pets</th><th scope="col">Pet share</th></tr></thead>
        <tbody>
          {data.cohorts.map((g) => (
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
        <a href={`/fleet.csv${filtersQuery({ ...f, page: 1 })}`}>CSV of these {data.total} hosts</a>
      </form>
      <WideTable rows={data.hosts} columns={FLEET_COLUMNS} />
      <nav aria-label="Pages">
        {page.page > 1 && <a href={`/${filtersQuery(f, { page: String(page.page - 1) })}`} rel="prev">Previous</a>}
        {` Page ${page.page} of ${page.pages} (${data.total} hosts) `}
        {page.page < page.pages && <a href={`/${filtersQuery(f, { page: String(page.page + 1) })}`} rel="next">Next</a>}
      </nav>
    </Layout>
  );
}
