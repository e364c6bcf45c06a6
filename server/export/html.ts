// A print-ready HTML report: the summary first (scope, coverage, changes by disposition, open
// exceptions, alerts), the controls' legend, then the detail host by host, streamed as it comes.
import { CONTROLS } from './controls.js';
import { DISPOSITIONS } from './model.js';
import type { ExportRecord, ExportSummary } from './model.js';

export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const td = (v: unknown): string => `<td>${escapeHtml(v === null || v === undefined ? '—' : Array.isArray(v) ? v.join(', ') : String(v))}</td>`;
const row = (cells: unknown[]): string => `<tr>${cells.map(td).join('')}</tr>\n`;
const head = (cells: string[]): string => `<tr>${cells.map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr>\n`;

const STYLE = `body{font:10pt/1.35 system-ui,sans-serif;margin:2em;color:#111}h1{font-size:16pt}h2{font-size:13pt;margin-top:1.6em;border-bottom:1px solid #999}
h3{font-size:11pt;page-break-after:avoid}table{border-collapse:collapse;width:100%;margin:.4em 0 1em}th,td{border:1px solid #bbb;padding:2px 4px;text-align:left;vertical-align:top;word-break:break-word}
th{background:#eee}.figures td:first-child{width:40%}.host{page-break-inside:avoid}@media print{body{margin:0}.host{page-break-before:auto}}`;

/** The summary as label/value pairs: the HTML and the PDF print the same figures. */
export function summaryLines(s: ExportSummary): Array<[string, string]> {
  return [
    ['Period', `${s.period.from} to ${s.period.to}`],
    ['Scope', s.scope],
    ['Generated', s.generatedAt],
    ['Hosts in scope', String(s.hosts)],
    ['Images', s.images.join(', ') || 'none'],
    ['Hosts scanned at least weekly', `${s.coverage.weeklyHeld} of ${s.hosts} (missed: ${s.coverage.weeklyMissed})`],
    ['Scans', `${s.coverage.fullScans} full, ${s.coverage.eventScans} event`],
    ['Monitoring outages', `${s.outages.stale} stale, ${s.outages.watchDegraded} watch degraded, ${s.outages.ongoing} not over`],
    ['Changes', `${s.changes.total} (${DISPOSITIONS.map((d) => `${d} ${s.changes[d]}`).join(', ')})`],
    ['Change sets', String(s.changeSets)],
    ['Open exceptions', String(s.openExceptions)],
    ['Alerts raised', `${s.alerts.total}, dispositioned ${s.alerts.dispositioned}, median ${s.alerts.medianSecondsToDisposition ?? '—'} s to disposition`],
  ];
}

export async function* toHtml(summary: ExportSummary, records: AsyncIterable<ExportRecord>): AsyncGenerator<string> {
  yield `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Quicksand compliance export ${escapeHtml(summary.period.from)} – ${escapeHtml(summary.period.to)}</title><style>${STYLE}</style></head><body>\n`;
  yield `<h1>Quicksand compliance export</h1>\n<h2>Summary</h2>\n<table class="figures">${summaryLines(summary).map(([k, v]) => row([k, v])).join('')}</table>\n`;
  yield `<h2>Controls</h2>\n<table>${head(['Control', 'What the records show'])}${Object.entries(CONTROLS).map(([id, text]) => row([id, text])).join('')}</table>\n<h2>Detail</h2>\n`;
  let open = false;
  let section = '';
  const table = (name: string, columns: string[]): string => {
    if (section === name) return '';
    const close = section === '' ? '' : '</table>\n';
    section = name;
    return `${close}<table>${head(columns)}`;
  };
  for await (const r of records) {
    switch (r.record) {
      case 'host':
        yield `${section === '' ? '' : '</table>\n'}${open ? '</section>\n' : ''}<section class="host"><h3>${escapeHtml(r.hostname)} <small>(${escapeHtml(r.hostId)})</small></h3>\n`;
        open = true;
        section = '';
        yield table('host', ['Image', 'Baseline', 'Manifest sha256', 'Tracked paths', 'Labels', 'Controls']) + row([`${r.image ?? '—'} ${r.imageVersion ?? ''}`, r.baselineVersion, r.manifestSha256, r.trackedPaths, Object.entries(r.labels).map(([k, v]) => `${k}=${v}`), r.controls]);
        break;
      case 'coverage':
        yield table('coverage', ['Full scans', 'Event scans', 'First full', 'Last full', 'Longest gap (h)', 'Weekly held', 'Controls']) + row([r.fullScans, r.eventScans, r.firstFullScan, r.lastFullScan, r.longestFullScanGapHours, r.weeklyHeld ? 'yes' : 'NO', r.controls]);
        break;
      case 'outage':
        yield table('outage', ['Outage', 'Start', 'End', 'Reason', 'Controls']) + row([r.outage, r.start, r.end ?? 'not over', r.reason, r.controls]);
        break;
      case 'change':
        yield table('change', ['Change', 'Kind', 'Path or name', 'First seen', 'Disposition', 'By', 'When', 'Reason', 'Ticket', 'Expires', 'Rule', 'Baseline', 'Controls']) +
          row([`${r.change} ${r.id}`, r.kind, r.path ?? r.name, r.firstSeen, r.disposition + (r.approvalExpiredAt === null ? '' : ` (approval expired ${r.approvalExpiredAt})`) + (r.resolvedAt === null ? '' : ` (resolved ${r.resolvedAt})`), r.by, r.at, r.reason, r.ticket, r.expiresAt, r.rule, r.baselineVersion, r.controls]);
        break;
      case 'alert':
        yield table('alert', ['Alert', 'Action', 'Sink', 'State', 'Attempts', 'Last attempt', 'Raised', 'Dispositioned', 'Seconds', 'Controls']) +
          row([r.title, r.action, r.sink, r.state, r.attempts, r.lastAttemptResult, r.createdAt, r.dispositionAt, r.secondsToDisposition, r.controls]);
        break;
    }
  }
  yield `${section === '' ? '' : '</table>\n'}${open ? '</section>\n' : ''}</body></html>\n`;
}
