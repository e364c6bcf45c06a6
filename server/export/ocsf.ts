// OCSF JSON lines (schema 1.7.0) for SIEMs, one event per record: a host as Software Inventory
// Info (5020), a changed path as File System Activity (1001, with file_diff where a config diff
// exists), a changed package as Software Inventory Info, a package manager run as Device Config
// State Change (5019), coverage, outages and alerts as Compliance Findings (2003).
import { CONTROLS } from './controls.js';
import type { ControlId } from './controls.js';
import type { ChangeRecord, ExportRecord } from './model.js';

export const OCSF_VERSION = '1.7.0';

/**
 * The attributes each class requires, as the OCSF schema (v1.7.0) marks them `required`: the base
 * event's, the category's (system: actor, device; findings: finding_info) and the class's own;
 * then the required attributes of the objects used (`object.attribute`).
 */
const BASE_REQUIRED = ['activity_id', 'category_uid', 'class_uid', 'metadata', 'severity_id', 'time', 'type_uid'] as const;
export const OCSF_REQUIRED: Readonly<Record<number, readonly string[]>> = {
  1001: [...BASE_REQUIRED, 'actor', 'device', 'file', 'metadata.product', 'metadata.version', 'device.type_id', 'file.name', 'file.type_id'],
  2003: [...BASE_REQUIRED, 'finding_info', 'compliance', 'metadata.product', 'metadata.version', 'finding_info.uid'],
  5019: [...BASE_REQUIRED, 'device', 'metadata.product', 'metadata.version', 'device.type_id'],
  5020: [...BASE_REQUIRED, 'device', 'metadata.product', 'metadata.version', 'device.type_id'],
};
/** OCSF's actor object: at least one of these. */
export const OCSF_ACTOR_ONE_OF = ['process', 'user', 'invoked_by', 'session', 'app_name', 'app_uid'] as const;

const CATEGORY: Record<number, number> = { 1001: 1, 2003: 2, 5019: 5, 5020: 5 };
const SEVERITY_ID: Record<string, number> = { info: 1, low: 2, medium: 3, high: 4, critical: 5 };
/** File System Activity's activity ids: Create, Update, Delete, Set Attributes; 99 Other. */
const FILE_ACTIVITY: Record<string, number> = { 'file-added': 1, 'file-modified': 3, 'file-removed': 4, 'file-metadata': 6 };
/** OCSF file type_id: 1 Regular File (when the distinction is not known, per the schema). */
const REGULAR_FILE = 1;
/** OCSF device type_id 1: Server. */
const SERVER = 1;

type Event = Record<string, unknown>;

function event(classUid: number, activityId: number, time: string, severityId: number, r: ExportRecord, body: Event): Event {
  return {
    class_uid: classUid,
    category_uid: CATEGORY[classUid],
    activity_id: activityId,
    type_uid: classUid * 100 + activityId,
    severity_id: severityId,
    time: Date.parse(time),
    metadata: { version: OCSF_VERSION, product: { name: 'Quicksand', vendor_name: 'Quicksand' }, uid: `${r.record}:${r.hostId}:${'id' in r ? r.id : ''}` },
    device: { type_id: SERVER, name: r.hostname, uid: r.hostId, hostname: r.hostname },
    ...body,
    unmapped: { controls: r.controls },
  };
}

const compliance = (controls: readonly ControlId[], pass: boolean, detail: string): Event => ({
  standards: [...new Set(controls.map((c) => c.replace(/ [^ ]+$/, '')))],
  control: controls.join(', '),
  requirements: controls.map((c) => `${c}: ${CONTROLS[c]}`),
  status_id: pass ? 1 : 3,
  status: pass ? 'Pass' : 'Fail',
  status_detail: detail,
});

function changeEvent(r: ChangeRecord): Event {
  const severity = SEVERITY_ID[r.severity ?? 'info'] ?? 0;
  const disposition = { disposition: r.disposition, by: r.by, at: r.at, reason: r.reason, ticket: r.ticket, expires_at: r.expiresAt, rule: r.rule, baseline_version: r.baselineVersion, approval_expired_at: r.approvalExpiredAt, resolved_at: r.resolvedAt };
  const status = { status_id: r.disposition === 'open' ? 99 : 1, status: r.disposition };
  if (r.change === 'change-set') {
    return event(5019, 2, r.at ?? r.firstSeen, 1, r, { ...status, message: `${r.kind} ${r.name ?? ''}`.trim(), actor: r.by === null ? { app_name: r.kind } : { user: { name: r.by } }, disposition });
  }
  if (r.kind.startsWith('package-')) {
    return event(5020, 2, r.firstSeen, severity, r, { ...status, message: `${r.kind} ${r.name ?? ''}`, package: { name: r.name ?? '', version: r.version ?? '' }, disposition });
  }
  const name = r.path ?? r.name ?? '';
  return event(1001, FILE_ACTIVITY[r.kind] ?? 99, r.firstSeen, severity, r, {
    ...status,
    message: `${r.kind} ${name}`,
    actor: { app_name: 'quicksand-agent' },
    file: { name: name.slice(name.lastIndexOf('/') + 1) || name, path: name, type_id: REGULAR_FILE },
    ...(r.configDiff === null ? {} : { file_diff: r.configDiff }),
    disposition,
  });
}

/** `exportedAt`: the time of what has none of its own (a host's inventory is as of the export). */
export function ocsfEvent(r: ExportRecord, exportedAt: string): Event {
  switch (r.record) {
    case 'host':
      return event(5020, 2, exportedAt, 1, r, {
        message: `${r.hostname} runs ${r.image ?? 'no image'} ${r.imageVersion ?? ''}`.trim(),
        device: { type_id: SERVER, name: r.hostname, uid: r.hostId, hostname: r.hostname, labels: Object.entries(r.labels).map(([k, v]) => `${k}=${v}`) },
        unmapped: { controls: r.controls, image: r.image, image_version: r.imageVersion, baseline_version: r.baselineVersion, manifest_sha256: r.manifestSha256, tracked_paths: r.trackedPaths },
      });
    case 'coverage':
      return event(2003, r.weeklyHeld ? 1 : 2, r.lastFullScan ?? exportedAt, r.weeklyHeld ? 1 : 4, r, {
        finding_info: { uid: `coverage:${r.hostId}`, title: `Change detection coverage of ${r.hostname}` },
        compliance: compliance(r.controls, r.weeklyHeld, `${r.fullScans} full and ${r.eventScans} event scans; longest gap between full scans ${r.longestFullScanGapHours} h`),
      });
    case 'outage':
      return event(2003, r.end === null ? 1 : 3, r.start, 4, r, {
        finding_info: { uid: `outage:${r.hostId}:${r.outage}:${r.start}`, title: `Monitoring outage (${r.outage}) on ${r.hostname}` },
        compliance: compliance(r.controls, r.end !== null, `${r.outage} from ${r.start} to ${r.end ?? 'not over'}${r.reason === null ? '' : `: ${r.reason}`}`),
        start_time: Date.parse(r.start),
        ...(r.end === null ? {} : { end_time: Date.parse(r.end) }),
      });
    case 'change':
      return changeEvent(r);
    case 'alert':
      return event(2003, r.dispositionAt === null ? 1 : 3, r.createdAt, 3, r, {
        finding_info: { uid: `alert:${r.id}`, title: r.title },
        compliance: compliance(r.controls, r.state === 'delivered' || r.state === 'planned', `${r.action} to ${r.sink ?? 'no sink'}: ${r.state} after ${r.attempts} attempt(s); dispositioned ${r.dispositionAt ?? 'not yet'}`),
      });
  }
}

export async function* toOcsf(records: AsyncIterable<ExportRecord>, exportedAt: string): AsyncGenerator<string> {
  let lines: string[] = [];
  for await (const r of records) {
    lines.push(`${JSON.stringify(ocsfEvent(r, exportedAt))}\n`);
    if (lines.length >= 256) {
      yield lines.join('');
      lines = [];
    }
  }
  if (lines.length > 0) yield lines.join('');
}
