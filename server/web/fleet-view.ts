// The fleet page's pure core: its filters from the URL, the hosts they keep, the page of them, the
// image cohorts, the CSV of exactly the kept rows, and the trend of pets. No I/O, no clock.
import { z } from 'zod';
import { HOST_STATUSES } from '../../shared/api.js';
import type { HostStatusName, HostSummary } from '../../shared/api.js';
import { SEVERITIES } from '../../shared/findings.js';
import { formatIssues } from '../../shared/schema-errors.js';

export const PAGE_SIZE = 50;

export const fleetFiltersSchema = z.strictObject({
  status: z.enum(HOST_STATUSES).optional(),
  image: z.string().min(1).max(200).optional(),
  version: z.string().min(1).max(200).optional(),
  /** `KEY=VALUE`, or `KEY` for any value. */
  label: z.string().min(1).max(400).optional(),
  /** Hosts whose most severe counting finding is at least this. */
  severity: z.enum(SEVERITIES).optional(),
  watch: z.enum(['degraded']).optional(),
  /** Text in the hostname, id, image or a label. */
  q: z.string().min(1).max(200).optional(),
  page: z.coerce.number().int().min(1).max(100_000).default(1),
});
export type FleetFilters = z.infer<typeof fleetFiltersSchema>;

/** The filters from a query string; empty fields are no filter. Errors name the field. */
export function parseFleetFilters(query: Record<string, string>): { filters: FleetFilters } | { error: string } {
  const given = Object.fromEntries(Object.entries(query).filter(([, v]) => v !== ''));
  const r = fleetFiltersSchema.safeParse(given);
  return r.success ? { filters: r.data } : { error: formatIssues(r.error).replaceAll('\n', '; ') };
}

/** The query string of `filters` (page left out unless asked), for links that keep the view. */
export function filtersQuery(filters: Partial<FleetFilters>, extra: Record<string, string> = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...filters, ...extra })) if (v !== undefined && !(k === 'page' && v === 1)) p.set(k, String(v));
  const s = p.toString();
  return s === '' ? '' : `?${s}`;
}

/** The hosts the filters keep, in the order given. `worst`: each host's most severe counting finding. */
export function filterHosts(hosts: readonly HostSummary[], f: FleetFilters, worst: Readonly<Record<string, string>>): HostSummary[] {
  const [labelKey, labelValue] = f.label === undefined ? [undefined, undefined] : splitLabel(f.label);
  const q = f.q?.toLowerCase();
  const minRank = f.severity === undefined ? -1 : SEVERITIES.indexOf(f.severity);
  return hosts.filter((h) => {
    if (f.status !== undefined && h.status !== f.status) return false;
    if (f.image !== undefined && h.image?.name !== f.image) return false;
    if (f.version !== undefined && h.image?.version !== f.version) return false;
    if (labelKey !== undefined && (!(labelKey in h.labels) || (labelValue !== undefined && h.labels[labelKey] !== labelValue))) return false;
    if (f.watch === 'degraded' && h.watch?.state !== 'degraded') return false;
    if (minRank >= 0) {
      const w = worst[h.id];
      if (w === undefined || SEVERITIES.indexOf(w as (typeof SEVERITIES)[number]) > minRank) return false;
    }
    if (q !== undefined) {
      const text = [h.hostname, h.id, h.image?.name ?? '', h.image?.version ?? '', ...Object.entries(h.labels).map(([k, v]) => `${k}=${v}`)].join('\n').toLowerCase();
      if (!text.includes(q)) return false;
    }
    return true;
  });
}

function splitLabel(label: string): [string, string | undefined] {
  const i = label.indexOf('=');
  return i < 0 ? [label, undefined] : [label.slice(0, i), label.slice(i + 1)];
}

/** How many hosts of each status (from the list already read: one pass over the fleet, not two). */
export function countStatuses(hosts: readonly HostSummary[]): Record<HostStatusName, number> {
  const out: Record<HostStatusName, number> = { cattle: 0, pet: 0, stale: 0, enrolled: 0 };
  for (const h of hosts) out[h.status]++;
  return out;
}

/** One page of the rows (1-based), with how many pages there are. */
export function paginate<T>(rows: readonly T[], page: number, size = PAGE_SIZE): { rows: T[]; page: number; pages: number } {
  const pages = Math.max(1, Math.ceil(rows.length / size));
  const p = Math.min(page, pages);
  return { rows: rows.slice((p - 1) * size, p * size), page: p, pages };
}

export interface Cohort {
  image: string;
  version: string;
  hosts: number;
  pets: number;
  /** Pets over hosts, 0..1. */
  petShare: number;
}

/** Hosts grouped by image and version, each group's pet share; most pets first. */
export function cohorts(hosts: readonly HostSummary[]): Cohort[] {
  const groups = new Map<string, Cohort>();
  for (const h of hosts) {
    const image = h.image?.name ?? '(no image)';
    const version = h.image?.version ?? '';
    const key = `${image}\u0000${version}`;
    const g = groups.get(key) ?? { image, version, hosts: 0, pets: 0, petShare: 0 };
    g.hosts += 1;
    if (h.status === 'pet') g.pets += 1;
    groups.set(key, g);
  }
  return [...groups.values()].map((g) => ({ ...g, petShare: g.pets / g.hosts })).sort((a, b) => b.pets - a.pets || a.image.localeCompare(b.image) || a.version.localeCompare(b.version));
}

/**
 * A CSV cell a spreadsheet will not run: a value starting with = + - @ (or a tab or carriage
 * return, which some read past) gets a leading apostrophe; quotes are doubled (RFC 4180).
 */
export function csvCell(value: string | number | null): string {
  let text = value === null ? '' : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n']/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export const FLEET_CSV_COLUMNS = ['id', 'hostname', 'status', 'image', 'version', 'open_findings', 'drift_score', 'pet_since', 'last_report_at', 'watch', 'labels'] as const;

/** The CSV of exactly these rows, header first, CRLF line ends. */
export function fleetCsv(hosts: readonly HostSummary[]): string {
  const lines = [FLEET_CSV_COLUMNS.join(',')];
  for (const h of hosts) {
    const labels = Object.entries(h.labels).map(([k, v]) => `${k}=${v}`).join(' ');
    lines.push([h.id, h.hostname, h.status, h.image?.name ?? null, h.image?.version ?? null, h.openFindings, h.driftScore, h.petSince, h.lastReportAt, h.watch?.state ?? null, labels].map(csvCell).join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

/**
 * The pets of today by the day they became one, over the last `days` days: the count at the end
 * of each day of the hosts that are pets now and were already then.
 */
export function petTrend(hosts: readonly HostSummary[], now: Date, days = 30): Array<{ day: string; pets: number }> {
  const since = hosts.filter((h) => h.status === 'pet' && h.petSince !== null).map((h) => Date.parse(h.petSince!)).sort((a, b) => a - b);
  const out: Array<{ day: string; pets: number }> = [];
  const end = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) + 86_400_000;
  let i = 0;
  for (let d = days - 1; d >= 0; d--) {
    const dayEnd = end - d * 86_400_000;
    while (i < since.length && since[i]! < dayEnd) i++;
    out.push({ day: new Date(dayEnd - 86_400_000).toISOString().slice(0, 10), pets: i });
  }
  return out;
}

/** The trend as an SVG polyline's points in a `width`×`height` box (y grows down). */
export function trendPoints(trend: ReadonlyArray<{ pets: number }>, width: number, height: number): string {
  const max = Math.max(1, ...trend.map((t) => t.pets));
  const step = trend.length > 1 ? width / (trend.length - 1) : 0;
  return trend.map((t, i) => `${(i * step).toFixed(1)},${(height - (t.pets / max) * height).toFixed(1)}`).join(' ');
}
