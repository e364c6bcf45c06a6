// The flat columns every tabular format prints (CSV, the HTML and PDF detail): one list, so a
// field added to a record shows up everywhere the same way.
import type { ExportRecord } from './model.js';

export const COLUMNS = [
  'record', 'hostId', 'hostname', 'controls',
  'image', 'imageVersion', 'baselineVersion', 'manifestSha256', 'trackedPaths',
  'fullScans', 'eventScans', 'firstFullScan', 'lastFullScan', 'longestFullScanGapHours', 'weeklyHeld',
  'outage', 'start', 'end',
  'change', 'id', 'kind', 'severity', 'path', 'name', 'version', 'firstSeen', 'resolvedAt', 'disposition', 'by', 'at', 'reason', 'ticket', 'expiresAt', 'approvalExpiredAt', 'rule', 'changeSet',
  'action', 'sink', 'state', 'attempts', 'lastAttemptAt', 'lastAttemptResult', 'createdAt', 'title', 'dispositionAt', 'secondsToDisposition',
] as const;
export type Column = (typeof COLUMNS)[number];

/** A record's value in a column, as text ('' where it has none); lists joined with "; ". */
export function cell(r: ExportRecord, column: Column): string {
  const v = (r as unknown as Record<string, unknown>)[column];
  if (v === undefined || v === null) return '';
  if (Array.isArray(v)) return v.join('; ');
  return String(v);
}
