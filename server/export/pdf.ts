// The PDF report, drawn with pdfkit: the same summary figures as the HTML first, the controls'
// legend, then one short block per record. Produced as the consumer reads it: the next records
// are drawn only once the chunks already made have been taken, so memory stays at a page or so.
import PDFDocument from 'pdfkit';
import { CONTROLS } from './controls.js';
import { summaryLines } from './html.js';
import type { ExportRecord, ExportSummary } from './model.js';

const BATCH = 200;

/** One record as the lines of its block. */
export function recordLine(r: ExportRecord): string {
  switch (r.record) {
    case 'host':
      return `HOST ${r.hostname} (${r.hostId}) image ${r.image ?? '-'} ${r.imageVersion ?? ''} baseline ${r.baselineVersion ?? 'image'} manifest ${r.manifestSha256 ?? '-'}; tracked ${r.trackedPaths.join(', ') || '-'}`;
    case 'coverage':
      return `  coverage: ${r.fullScans} full, ${r.eventScans} event scans; longest gap ${r.longestFullScanGapHours} h; weekly ${r.weeklyHeld ? 'held' : 'NOT held'}; last full ${r.lastFullScan ?? 'never'}`;
    case 'outage':
      return `  outage ${r.outage}: ${r.start} to ${r.end ?? 'not over'}${r.reason === null ? '' : ` (${r.reason})`}`;
    case 'change': {
      // An approval that expired left the change open: who approved it then is not who disposed of it.
      const by = `${r.by}${r.at === null ? '' : ` at ${r.at}`}`;
      const who = r.by === null ? '' : r.approvalExpiredAt === null ? ` by ${by}` : ` (approved by ${by} until ${r.approvalExpiredAt})`;
      const extra = [r.ticket === null ? '' : `ticket ${r.ticket}`, r.reason === null ? '' : `"${r.reason}"`, r.expiresAt === null ? '' : `expires ${r.expiresAt}`, r.rule === null ? '' : `rule ${r.rule}`, r.baselineVersion === null ? '' : `baseline v${r.baselineVersion}`, r.approvalExpiredAt === null ? '' : 'approval expired']
        .filter((x) => x !== '')
        .join(', ');
      return `  ${r.change} ${r.id} ${r.kind} ${r.path ?? r.name ?? ''}: ${r.disposition.toUpperCase()}${who}${extra === '' ? '' : ` (${extra})`}; first seen ${r.firstSeen}`;
    }
    case 'alert':
      return `  alert ${r.action} "${r.title}" to ${r.sink ?? 'no sink'}: ${r.state}, ${r.attempts} attempt(s), raised ${r.createdAt}, dispositioned ${r.dispositionAt ?? 'not yet'}${r.secondsToDisposition === null ? '' : ` after ${r.secondsToDisposition} s`}`;
  }
}

export async function* toPdf(summary: ExportSummary, records: AsyncIterable<ExportRecord>): AsyncGenerator<Buffer> {
  // The creation date is the export's own time, not the moment the bytes were drawn.
  const doc = new PDFDocument({ size: 'A4', layout: 'landscape', margin: 36, compress: true, info: { Title: `Quicksand compliance export ${summary.period.from} to ${summary.period.to}`, Producer: 'quicksand', Creator: 'quicksand', CreationDate: new Date(summary.generatedAt) } });
  const chunks: Buffer[] = [];
  let ended = false;
  doc.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((resolve) => doc.on('end', () => ((ended = true), resolve())));
  const drain = async function* (): AsyncGenerator<Buffer> {
    await new Promise((r) => setImmediate(r));
    while (chunks.length > 0) yield chunks.shift()!;
  };

  const width = doc.page.width - 72;
  doc.font('Helvetica-Bold').fontSize(16).text('Quicksand compliance export');
  doc.moveDown(0.5).fontSize(12).text('Summary');
  doc.font('Helvetica').fontSize(10);
  for (const [k, v] of summaryLines(summary)) doc.text(`${k}: ${v}`, { width });
  doc.moveDown(0.5).font('Helvetica-Bold').fontSize(12).text('Controls');
  doc.font('Helvetica').fontSize(8);
  for (const [id, text] of Object.entries(CONTROLS)) doc.text(`${id}: ${text}`, { width });
  doc.addPage().font('Helvetica-Bold').fontSize(12).text('Detail');
  doc.font('Helvetica').fontSize(7.5);
  let n = 0;
  for await (const r of records) {
    if (r.record === 'host') doc.moveDown(0.3).font('Helvetica-Bold');
    doc.text(recordLine(r), { width });
    if (r.record === 'host') doc.font('Helvetica');
    if (++n % BATCH === 0) yield* drain();
  }
  doc.end();
  await done;
  if (!ended) throw new Error('the PDF did not end');
  while (chunks.length > 0) yield chunks.shift()!;
}
