// The export model. Pure: store rows in, records out. One record per row of evidence (a host in
// scope, its coverage, an outage, a change with its disposition, an alert), each naming the
// controls it supports; a summary is folded from the records. Every format is made from these.
import type { DeliveryRow, AttemptRow, ExportApprovalRow, ExportChangeSetRow, ExportFindingRow, ExportHostRow, ExportManifestRow, ExportReportRow, ExportScope } from '../store/types.js';
import { findingTriage } from '../finding-triage.js';
import type { Decision } from '../rules.js';
import { CONTROL_MAP, changeControls } from './controls.js';
import type { ControlId } from './controls.js';

import { EXPORT_FORMATS } from '../../shared/api.js';

export { EXPORT_FORMATS };
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** PCI DSS 11.5.2: critical files compared at least once a week. */
export const WEEK_MS = 7 * 24 * 3_600_000;

export interface ExportPeriod {
  from: Date;
  to: Date;
}

export interface ExportRequest extends ExportPeriod {
  scope: ExportScope;
  /** When the export is made: an ongoing outage or an expiry is judged against min(to, now). */
  now: Date;
  staleAfterMs: number;
}

export type Disposition = 'open' | 'approved' | 'waived' | 're-baselined' | 'resolved';
export const DISPOSITIONS: readonly Disposition[] = ['open', 'approved', 'waived', 're-baselined', 'resolved'];

interface Base {
  hostId: string;
  hostname: string;
  controls: ControlId[];
}
export interface HostRecord extends Base {
  record: 'host';
  image: string | null;
  imageVersion: string | null;
  baselineVersion: number | null;
  manifestSha256: string | null;
  trackedPaths: string[];
  ignoredPaths: string[];
  labels: Record<string, string>;
}
export interface CoverageRecord extends Base {
  record: 'coverage';
  fullScans: number;
  eventScans: number;
  firstFullScan: string | null;
  lastFullScan: string | null;
  /** The longest time without a full scan in the period (from the last one before it, or its start). */
  longestFullScanGapHours: number;
  weeklyHeld: boolean;
}
export interface OutageRecord extends Base {
  record: 'outage';
  outage: 'watch-degraded' | 'stale';
  start: string;
  /** Null: not over by the end of the period. */
  end: string | null;
  reason: string | null;
}
export interface ChangeRecord extends Base {
  record: 'change';
  change: 'finding' | 'change-set';
  id: string;
  kind: string;
  severity: string | null;
  path: string | null;
  name: string | null;
  /** A package's version after the change (before it, for a removal). */
  version: string | null;
  firstSeen: string;
  resolvedAt: string | null;
  disposition: Disposition;
  /** Who approved or re-baselined it (the token's name, else its id), when, why, with which ticket, until when. */
  by: string | null;
  at: string | null;
  reason: string | null;
  ticket: string | null;
  expiresAt: string | null;
  /** An approval whose expiry passed in the period: the change was open again from then. */
  approvalExpiredAt: string | null;
  rule: string | null;
  baselineVersion: number | null;
  changeSet: string | null;
  /** A unified diff of a config file, where the agent sent one (secrets masked by the agent). */
  configDiff: string | null;
}
export interface AlertRecord extends Base {
  record: 'alert';
  id: string;
  action: string;
  dedupKey: string;
  sink: string | null;
  state: string;
  attempts: number;
  lastAttemptAt: string | null;
  lastAttemptResult: string | null;
  createdAt: string;
  title: string;
  /** When the host was dispositioned (its resolve was raised); null: not by the export's time. */
  dispositionAt: string | null;
  secondsToDisposition: number | null;
}

export type ExportRecord = HostRecord | CoverageRecord | OutageRecord | ChangeRecord | AlertRecord;

const hours = (ms: number): number => Math.round((ms / 3_600_000) * 100) / 100;
const iso = (ms: number): string => new Date(ms).toISOString();
const base = (host: ExportHostRow, controls: readonly ControlId[]): Base => ({ hostId: host.id, hostname: host.hostname, controls: [...controls] });

/** The end of what an export can know: the period's end, or now when that is still to come. */
export const horizon = (req: { to: Date; now: Date }): number => Math.min(req.to.getTime(), req.now.getTime());

export function hostRecord(host: ExportHostRow, manifest: ExportManifestRow | null): HostRecord {
  return {
    record: 'host',
    ...base(host, CONTROL_MAP.host),
    image: host.image?.name ?? null,
    imageVersion: host.image?.version ?? null,
    baselineVersion: host.baselineVersion,
    manifestSha256: manifest?.sha256 ?? null,
    trackedPaths: manifest?.policy?.tracked ?? [],
    ignoredPaths: manifest?.policy?.ignored ?? [],
    labels: host.labels,
  };
}

/**
 * A host's coverage and outages over the period, fed its reports in order. Stale periods: gaps
 * between reports longer than staleAfterMs (stale from staleAfterMs after the last report until
 * the next). Watch outages: from a report saying `degraded` until one saying `ok`.
 */
export function createCoverage(host: ExportHostRow, req: ExportRequest, before: { lastFull: ExportReportRow | null; last: ExportReportRow | null }) {
  const from = req.from.getTime();
  const end = horizon(req);
  const start = Math.max(from, Date.parse(host.enrolledAt));
  let fullScans = 0;
  let eventScans = 0;
  let firstFull: number | null = null;
  let lastFullAt = before.lastFull === null ? null : Date.parse(before.lastFull.receivedAt);
  let longestGap = 0;
  let lastReport = before.last === null ? null : Date.parse(before.last.receivedAt);
  let degraded: { start: number; reason: string | null } | null = before.last?.watch?.state === 'degraded' ? { start: from, reason: before.last.watch.reason } : null;
  const outages: OutageRecord[] = [];
  const outage = (kind: OutageRecord['outage'], s: number, e: number | null, reason: string | null): void => {
    outages.push({ record: 'outage', ...base(host, CONTROL_MAP.outage), outage: kind, start: iso(Math.max(s, from)), end: e === null ? null : iso(e), reason });
  };
  const staleGap = (at: number): void => {
    const since = lastReport ?? start - req.staleAfterMs;
    if (at - since > req.staleAfterMs) outage('stale', since + req.staleAfterMs, at, lastReport === null ? 'no report yet' : `no report for ${hours(at - since)} h`);
  };
  return {
    add(r: ExportReportRow): void {
      const received = Date.parse(r.receivedAt);
      staleGap(received);
      lastReport = received;
      if (r.kind === 'full') {
        // The server's receive time, not the agent's clock: a host cannot date its own evidence.
        const scanned = received;
        fullScans++;
        firstFull ??= scanned;
        longestGap = Math.max(longestGap, scanned - Math.max(lastFullAt ?? start, start - WEEK_MS));
        lastFullAt = scanned;
      } else eventScans++;
      if (r.watch?.state === 'degraded' && degraded === null) degraded = { start: received, reason: r.watch.reason };
      else if (r.watch?.state === 'ok' && degraded !== null) {
        outage('watch-degraded', degraded.start, received, degraded.reason);
        degraded = null;
      }
    },
    finish(): { coverage: CoverageRecord; outages: OutageRecord[] } {
      const tail = end - (lastReport ?? start - req.staleAfterMs);
      if (tail > req.staleAfterMs) outage('stale', (lastReport ?? start - req.staleAfterMs) + req.staleAfterMs, null, lastReport === null ? 'no report yet' : 'no report since');
      if (degraded !== null) outage('watch-degraded', degraded.start, null, degraded.reason);
      longestGap = Math.max(longestGap, end - Math.max(lastFullAt ?? start, start - WEEK_MS));
      outages.sort((a, b) => a.start.localeCompare(b.start));
      return {
        coverage: {
          record: 'coverage',
          ...base(host, CONTROL_MAP.coverage),
          fullScans,
          eventScans,
          firstFullScan: firstFull === null ? null : iso(firstFull),
          lastFullScan: lastFullAt === null ? null : iso(lastFullAt),
          longestFullScanGapHours: hours(longestGap),
          weeklyHeld: longestGap <= WEEK_MS,
        },
        outages,
      };
    },
  };
}

/**
 * Where a change stood at the end of the period: the approval in force then (made by then, not
 * reopened by then, not expired), else a rule's waiver, else resolved if it went, else open.
 */
export function changeRecord(host: ExportHostRow, f: ExportFindingRow, approvals: readonly ExportApprovalRow[], req: ExportRequest): ChangeRecord {
  const asOf = horizon(req);
  const valid = approvals.filter((a) => (f.identity === null || a.identity === f.identity) && Date.parse(a.createdAt) <= asOf && (a.reopenedAt === null || Date.parse(a.reopenedAt) > asOf));
  const inForce = (a: ExportApprovalRow): boolean => a.expiresAt === null || Date.parse(a.expiresAt) > asOf;
  const chosen = valid.filter(inForce).at(-1) ?? valid.at(-1);
  const triage = findingTriage(
    f.decision as Decision | null,
    f.waived,
    chosen === undefined ? undefined : { kind: chosen.kind, created_by: chosen.createdByName ?? chosen.createdBy, reason: chosen.reason, ticket: chosen.ticket, created_at: chosen.createdAt, expires_at: chosen.expiresAt },
    f.firstSeen,
    new Date(asOf),
  );
  const resolved = f.resolvedAt !== null && Date.parse(f.resolvedAt) <= asOf;
  let disposition: Disposition;
  if (triage.state === 'approved') disposition = triage.approval?.kind === 'rebaseline' ? 're-baselined' : triage.approval?.kind === 'rule' ? 'waived' : 'approved';
  else if (triage.state === 'waived') disposition = 'waived';
  else disposition = resolved ? 'resolved' : 'open';
  const approval = disposition === 'approved' || disposition === 're-baselined' || triage.state === 'approval-expired' ? triage.approval : null;
  const expired = triage.state === 'approval-expired' && chosen !== undefined ? chosen.expiresAt : null;
  const configDiff = typeof f.detail.configDiff === 'string' ? f.detail.configDiff : null;
  return {
    record: 'change',
    ...base(host, changeControls(f.kind, f.path, disposition === 'waived' || (disposition === 'approved' && approval?.expiresAt !== null))),
    change: 'finding',
    id: String(f.id),
    kind: f.kind,
    severity: f.severity,
    path: f.path,
    name: f.name,
    version: typeof f.detail.after === 'string' ? f.detail.after : typeof f.detail.before === 'string' ? f.detail.before : null,
    firstSeen: f.firstSeen,
    resolvedAt: resolved ? f.resolvedAt : null,
    disposition,
    by: approval?.by ?? null,
    at: approval?.at ?? null,
    reason: approval?.reason ?? null,
    ticket: approval?.ticket ?? f.ticket,
    expiresAt: approval?.expiresAt ?? null,
    approvalExpiredAt: expired,
    rule: triage.waiver?.rule ?? null,
    baselineVersion: disposition === 're-baselined' ? (chosen?.baselineVersion ?? null) : null,
    changeSet: f.changeSet,
    configDiff,
  };
}

/** A change set's disposition from its findings': open while any is open, else the least settled of the rest. */
export function changeSetRecord(host: ExportHostRow, cs: ExportChangeSetRow, findings: readonly Disposition[]): ChangeRecord {
  const order: Disposition[] = ['open', 'approved', 're-baselined', 'waived', 'resolved'];
  const disposition = order.find((d) => findings.includes(d)) ?? 'resolved';
  return {
    record: 'change',
    ...base(host, CONTROL_MAP['change-set']),
    change: 'change-set',
    id: cs.id,
    kind: cs.tool,
    severity: null,
    path: null,
    name: cs.command,
    version: null,
    firstSeen: cs.firstSeen,
    resolvedAt: null,
    disposition,
    by: cs.user,
    at: cs.start,
    reason: `${findings.length} change(s) of ${cs.packages} package(s)`,
    ticket: cs.ticket,
    expiresAt: null,
    approvalExpiredAt: null,
    rule: null,
    baselineVersion: null,
    changeSet: cs.id,
    configDiff: null,
  };
}

/**
 * A host's alerts raised in the period, given all its deliveries in order: a trigger's
 * disposition is the first resolve of the same incident (the host was cattle again).
 */
export function alertRecords(host: ExportHostRow, deliveries: readonly DeliveryRow[], attempts: ReadonlyMap<string, readonly AttemptRow[]>, req: ExportRequest): AlertRecord[] {
  const from = req.from.getTime();
  const to = req.to.getTime();
  const resolves = new Map<string, number[]>();
  for (const d of deliveries) if (d.action === 'resolve') resolves.set(d.dedupKey, [...(resolves.get(d.dedupKey) ?? []), Date.parse(d.createdAt)]);
  const out: AlertRecord[] = [];
  for (const d of deliveries) {
    const created = Date.parse(d.createdAt);
    if (created < from || created > to) continue;
    const tried = attempts.get(d.id) ?? [];
    const last = tried.at(-1);
    const disposed = d.action === 'resolve' ? created : ((resolves.get(d.dedupKey) ?? []).find((t) => t >= created) ?? null);
    out.push({
      record: 'alert',
      ...base(host, CONTROL_MAP.alert),
      id: d.id,
      action: d.action,
      dedupKey: d.dedupKey,
      sink: d.sinkId,
      state: d.state,
      attempts: d.attempts,
      lastAttemptAt: last === undefined ? null : iso(last.at),
      lastAttemptResult: last === undefined ? (d.reason ?? null) : `${last.result}${last.status === null ? '' : ` (HTTP ${last.status})`}${last.error === null ? '' : `: ${last.error}`}`,
      createdAt: d.createdAt,
      title: d.alert.title,
      dispositionAt: disposed === null ? null : iso(disposed),
      secondsToDisposition: disposed === null ? null : Math.round((disposed - created) / 1000),
    });
  }
  return out;
}

export interface ExportSummary {
  period: { from: string; to: string };
  scope: string;
  generatedAt: string;
  hosts: number;
  images: string[];
  coverage: { weeklyHeld: number; weeklyMissed: number; fullScans: number; eventScans: number };
  outages: { stale: number; watchDegraded: number; ongoing: number };
  changes: Record<Disposition, number> & { total: number };
  changeSets: number;
  /** Waivers and approvals with an expiry in force at the period's end: what must be reviewed again. */
  openExceptions: number;
  alerts: { total: number; dispositioned: number; medianSecondsToDisposition: number | null };
}

export function scopeText(scope: ExportScope): string {
  switch (scope.kind) {
    case 'all':
      return 'all';
    case 'image':
      return `image:${scope.name}`;
    case 'label':
      return `label:${scope.key}=${scope.value}`;
    case 'host':
      return `host:${scope.id}`;
  }
}

/** Folds records into the summary; the alert median keeps one number per alert. */
export function createSummary(req: ExportRequest) {
  const changes = Object.fromEntries(DISPOSITIONS.map((d) => [d, 0])) as Record<Disposition, number>;
  const s: ExportSummary = {
    period: { from: req.from.toISOString(), to: req.to.toISOString() },
    scope: scopeText(req.scope),
    generatedAt: req.now.toISOString(),
    hosts: 0,
    images: [],
    coverage: { weeklyHeld: 0, weeklyMissed: 0, fullScans: 0, eventScans: 0 },
    outages: { stale: 0, watchDegraded: 0, ongoing: 0 },
    changes: { ...changes, total: 0 },
    changeSets: 0,
    openExceptions: 0,
    alerts: { total: 0, dispositioned: 0, medianSecondsToDisposition: null },
  };
  const images = new Set<string>();
  const times: number[] = [];
  return {
    add(r: ExportRecord): void {
      switch (r.record) {
        case 'host':
          s.hosts++;
          if (r.image !== null) images.add(`${r.image} ${r.imageVersion ?? ''}`.trim());
          break;
        case 'coverage':
          s.coverage[r.weeklyHeld ? 'weeklyHeld' : 'weeklyMissed']++;
          s.coverage.fullScans += r.fullScans;
          s.coverage.eventScans += r.eventScans;
          break;
        case 'outage':
          s.outages[r.outage === 'stale' ? 'stale' : 'watchDegraded']++;
          if (r.end === null) s.outages.ongoing++;
          break;
        case 'change':
          if (r.change === 'change-set') s.changeSets++;
          else {
            s.changes[r.disposition]++;
            s.changes.total++;
            if (r.disposition === 'waived' || (r.disposition === 'approved' && r.expiresAt !== null)) s.openExceptions++;
          }
          break;
        case 'alert':
          if (r.action !== 'trigger') break;
          s.alerts.total++;
          if (r.secondsToDisposition !== null) {
            s.alerts.dispositioned++;
            times.push(r.secondsToDisposition);
          }
          break;
      }
    },
    finish(): ExportSummary {
      s.images = [...images].sort();
      times.sort((a, b) => a - b);
      s.alerts.medianSecondsToDisposition = times.length === 0 ? null : times[Math.floor((times.length - 1) / 2)]!;
      return s;
    },
  };
}
