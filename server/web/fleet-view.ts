// The fleet page's pure core: its filters from the URL, which page, the cohorts' pet share, the
// CSV lines of the kept rows, and the trend of pets from the status history. No I/O, no clock.
// The store does the filtering, paging and counting in SQL (server/store/fleet-query.ts).
import { z } from 'zod';
import { HOST_STATUSES } from '../../shared/api.js';
import type { HostSummary } from '../../shared/api.js';
import type { CohortRow } from '../store/types.js';
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

/** Where page `page` (1-based, kept within the pages there are) of `total` rows starts, and how many pages there are. */
export function pageOf(total: number, page: number, size = PAGE_SIZE): { page: number; pages: number; offset: number } {
  const pages = Math.max(1, Math.ceil(total / size));
  const p = Math.min(page, pages);
  return { page: p, pages, offset: (p - 1) * size };
}

export interface Cohort extends CohortRow {
  /** Pets over hosts, 0..1. */
  petShare: number;
}

/** Each cohort's pet share (the store groups and orders them: most pets first). */
export const withPetShare = (rows: readonly CohortRow[]): Cohort[] => rows.map((g) => ({ ...g, petShare: g.hosts === 0 ? 0 : g.pets / g.hosts }));

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

/** The CSV's first line, CRLF ended. */
export const FLEET_CSV_HEADER = `${FLEET_CSV_COLUMNS.join(',')}\r\n`;

/** These hosts as CSV lines, each CRLF ended (the CSV is the header, then these page after page). */
export function fleetCsvLines(hosts: readonly HostSummary[]): string {
  let out = '';
  for (const h of hosts) {
    const labels = Object.entries(h.labels).map(([k, v]) => `${k}=${v}`).join(' ');
    out += `${[h.id, h.hostname, h.status, h.image?.name ?? null, h.image?.version ?? null, h.openFindings, h.driftScore, h.petSince, h.lastReportAt, h.watch?.state ?? null, labels].map(csvCell).join(',')}\r\n`;
  }
  return out;
}

/** The first UTC day of a trend of `days` days ending today. */
export const trendStart = (now: Date, days = TREND_DAYS): Date => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) - (days - 1) * 86_400_000);

export const TREND_DAYS = 30;

/**
 * The pets at the end of each of the last `days` UTC days, from the status history: the pets now
 * less what changed after each day (`deltas`: per day from trendStart, pets gained less lost).
 */
export function petTrend(petsNow: number, deltas: ReadonlyArray<{ day: string; delta: number }>, now: Date, days = TREND_DAYS): Array<{ day: string; pets: number }> {
  const start = trendStart(now, days).getTime();
  const out: Array<{ day: string; pets: number }> = [];
  for (let d = 0; d < days; d++) {
    const day = new Date(start + d * 86_400_000).toISOString().slice(0, 10);
    const after = deltas.reduce((sum, x) => (x.day > day ? sum + x.delta : sum), 0);
    out.push({ day, pets: petsNow - after });
  }
  return out;
}

/** The trend as an SVG polyline's points in a `width`×`height` box (y grows down). */
export function trendPoints(trend: ReadonlyArray<{ pets: number }>, width: number, height: number): string {
  const max = Math.max(1, ...trend.map((t) => t.pets));
  const step = trend.length > 1 ? width / (trend.length - 1) : 0;
  return trend.map((t, i) => `${(i * step).toFixed(1)},${(height - (t.pets / max) * height).toFixed(1)}`).join(' ');
}
