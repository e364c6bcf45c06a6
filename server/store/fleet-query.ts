// The console's fleet query in SQL, for both backends: the WHERE of the filters the fleet page
// keeps in its URL, and the aggregates beside it. The text is the same on SQLite and PostgreSQL
// but for the placeholders and the two JSON functions; the status is the one a host shows
// (`effectiveStatus`: stale and enrolled decided from the last report and the clock). Pure.
import type { HostStatusName } from '../../shared/api.js';
import { SEVERITIES } from '../../shared/findings.js';
import type { FleetPageAt, FleetQuery } from './types.js';

export type Dialect = 'sqlite' | 'postgres';

/** A statement's text and its parameters, in order. */
export interface SqlText {
  sql: string;
  params: unknown[];
}

/** Placeholders as the dialect writes them, numbered in the order they are used. */
function placeholders(dialect: Dialect) {
  const params: unknown[] = [];
  const p = (v: unknown): string => {
    params.push(v);
    return dialect === 'postgres' ? `$${params.length}` : '?';
  };
  return { params, p };
}

/** The last report before this is stale (effectiveStatus: older than staleAfterMs). */
export const staleCutoff = (now: Date, staleAfterMs: number): string => new Date(now.getTime() - staleAfterMs).toISOString();

/** The status a host shows, in SQL (see classify.ts effectiveStatus), over `hosts h`. */
export const effectiveStatusSql = (cutoff: string): string =>
  `CASE WHEN h.last_report_at IS NULL THEN (CASE WHEN h.status = 'pet' THEN 'pet' ELSE 'enrolled' END) WHEN h.last_report_at < ${cutoff} THEN 'stale' ELSE h.status END`;

/** The same as `effectiveStatusSql(cutoff) = status`, written so that an index on the stored status serves it. */
function statusIs(status: HostStatusName, cutoffAt: () => string): string {
  const cutoff = status === 'enrolled' ? '' : cutoffAt();
  switch (status) {
    case 'pet':
      return `(h.status = 'pet' AND (h.last_report_at IS NULL OR h.last_report_at >= ${cutoff}))`;
    case 'cattle':
      return `(h.status = 'cattle' AND h.last_report_at >= ${cutoff})`;
    case 'stale':
      return `(h.last_report_at < ${cutoff} OR (h.status = 'stale' AND h.last_report_at IS NOT NULL))`;
    case 'enrolled':
      return `(h.last_report_at IS NULL AND h.status <> 'pet')`;
  }
}

/** Text ordered bytewise, as SQLite's BINARY (PostgreSQL's columns are COLLATE "C"; a computed one may not be). */
const bytewise = (dialect: Dialect): string => (dialect === 'postgres' ? ' COLLATE "C"' : '');

/** Lower case for ASCII letters only: what SQLite's lower() and PostgreSQL's under COLLATE "C" do. */
export const asciiLower = (s: string): string => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

/** `KEY=VALUE`, or `KEY` for any value. */
export function splitLabel(label: string): [string, string | undefined] {
  const i = label.indexOf('=');
  return i < 0 ? [label, undefined] : [label.slice(0, i), label.slice(i + 1)];
}

/**
 * The hosts (not containers) the query keeps, `hosts h`. Severity: the host's most severe
 * counting finding (open, not waived, not approved at `now`, as host-status.ts counts) is at
 * least this. Text: in the hostname, id, image, version or a label `KEY=VALUE`, ASCII case folded.
 */
function fleetWhere(query: FleetQuery, now: Date, staleAfterMs: number, dialect: Dialect, p: (v: unknown) => string): string {
  const where = ['h.parent_id IS NULL'];
  const cutoff = staleCutoff(now, staleAfterMs);
  if (query.status !== undefined) where.push(statusIs(query.status, () => p(cutoff)));
  if (query.image !== undefined) where.push(`h.image_name = ${p(query.image)} AND h.image_version IS NOT NULL`);
  if (query.version !== undefined) where.push(`h.image_version = ${p(query.version)} AND h.image_name IS NOT NULL`);
  if (query.watch === 'degraded') where.push(`h.watch_state = 'degraded'`);
  if (query.label !== undefined) {
    const [key, value] = splitLabel(query.label);
    if (dialect === 'sqlite') {
      where.push(`EXISTS (SELECT 1 FROM json_each(h.labels) j WHERE j.key = ${p(key)}${value === undefined ? '' : ` AND j.value = ${p(value)}`})`);
    } else {
      where.push(value === undefined ? `jsonb_exists(h.labels::jsonb, ${p(key)}::text)` : `(h.labels::jsonb ->> ${p(key)}::text) = ${p(value)}::text`);
    }
  }
  if (query.severity !== undefined) {
    const ranks = SEVERITIES.slice(0, SEVERITIES.indexOf(query.severity) + 1).map((s) => `'${s}'`).join(', ');
    where.push(`EXISTS (SELECT 1 FROM findings f WHERE f.host_id = h.id AND f.resolved_at IS NULL AND f.severity IN (${ranks}) AND f.waived = 0
      AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.finding_id = f.id AND a.identity = f.identity AND a.reopened_at IS NULL
                      AND (a.expires_at IS NULL OR a.expires_at > ${p(now.toISOString())})))`);
  }
  if (query.q !== undefined) {
    const q = asciiLower(query.q);
    const has = (expr: string) => (dialect === 'sqlite' ? `instr(lower(${expr}), ${p(q)}) > 0` : `strpos(lower(${expr}), ${p(q)}::text) > 0`);
    const labelText = dialect === 'sqlite' ? `SELECT 1 FROM json_each(h.labels) j WHERE ${has(`j.key || '=' || j.value`)}` : `SELECT 1 FROM jsonb_each_text(h.labels::jsonb) j WHERE ${has(`(j.key || '=' || j.value) COLLATE "C"`)}`;
    where.push(`(${has('h.hostname')} OR ${has('h.id')} OR ${has(`coalesce(h.image_name, '')`)} OR ${has(`coalesce(h.image_version, '')`)} OR EXISTS (${labelText}))`);
  }
  return where.join(' AND ');
}

/** The kept hosts' rows, ordered by hostname then id (a stable order: the id is unique). */
export function fleetHostsSql(query: FleetQuery, at: FleetPageAt, now: Date, staleAfterMs: number, dialect: Dialect): SqlText {
  const { params, p } = placeholders(dialect);
  let where = fleetWhere(query, now, staleAfterMs, dialect, p);
  // A row value: both backends seek the (hostname, id) order's index to it.
  if (at.after !== undefined) where += ` AND (h.hostname, h.id) > (${p(at.after.hostname)}, ${p(at.after.id)})`;
  return { sql: `SELECT h.* FROM hosts h WHERE ${where} ORDER BY h.hostname, h.id LIMIT ${p(at.limit)} OFFSET ${p(at.offset ?? 0)}`, params };
}

export function fleetCountSql(query: FleetQuery, now: Date, staleAfterMs: number, dialect: Dialect): SqlText {
  const { params, p } = placeholders(dialect);
  return { sql: `SELECT count(*) AS n FROM hosts h WHERE ${fleetWhere(query, now, staleAfterMs, dialect, p)}`, params };
}

/** Each shown status's count over the fleet, in one pass. */
export function statusCountsSql(now: Date, staleAfterMs: number, dialect: Dialect): SqlText {
  const { params, p } = placeholders(dialect);
  return { sql: `SELECT ${effectiveStatusSql(p(staleCutoff(now, staleAfterMs)))} AS status, count(*) AS n FROM hosts h WHERE h.parent_id IS NULL GROUP BY 1`, params };
}

/** Hosts by image and version with how many of each are pets now; most pets first, then by name. */
export function cohortsSql(now: Date, staleAfterMs: number, limit: number, dialect: Dialect): SqlText {
  const { params, p } = placeholders(dialect);
  const known = 'h.image_name IS NOT NULL AND h.image_version IS NOT NULL';
  return {
    sql: `SELECT * FROM (
            SELECT CASE WHEN ${known} THEN h.image_name ELSE '(no image)' END AS image, CASE WHEN ${known} THEN h.image_version ELSE '' END AS version,
              count(*) AS hosts, sum(CASE WHEN ${effectiveStatusSql(p(staleCutoff(now, staleAfterMs)))} = 'pet' THEN 1 ELSE 0 END) AS pets
            FROM hosts h WHERE h.parent_id IS NULL GROUP BY 1, 2) g
          ORDER BY g.pets DESC, g.image${bytewise(dialect)}, g.version${bytewise(dialect)} LIMIT ${p(limit)}`,
    params,
  };
}

/**
 * The fleet's pets by day from the status history: how many became one less how many stopped,
 * per UTC day since `since` (hosts, not containers). With the pets now, that gives each day's end.
 */
export function petDeltasSql(since: string, dialect: Dialect): SqlText {
  const { params, p } = placeholders(dialect);
  return {
    sql: `SELECT substr(c.at, 1, 10) AS day,
            sum(CASE WHEN c.to_status = 'pet' THEN 1 ELSE 0 END) - sum(CASE WHEN c.from_status = 'pet' THEN 1 ELSE 0 END) AS delta
          FROM host_status_changes c JOIN hosts h ON h.id = c.host_id
          WHERE c.at >= ${p(since)} AND h.parent_id IS NULL GROUP BY 1 ORDER BY 1`,
    params,
  };
}

/** The pets now as the history counts them: the stored status (the trend's last point). */
export const STORED_PETS_SQL = `SELECT count(*) AS n FROM hosts h WHERE h.parent_id IS NULL AND h.status = 'pet'`;
