// The export's I/O shell: reads the store page by page and hands the rows to the pure model,
// yielding records one host at a time. Nothing grows with the row count but the page.
import type { ExportHostRow, ExportManifestRow, Store } from '../store/types.js';
import type { DeliveryRow } from '../store/types.js';
import { alertRecords, changeRecord, changeSetRecord, createCoverage, createSummary, hostRecord } from './model.js';
import type { Disposition, ExportRecord, ExportRequest, ExportSummary } from './model.js';

export const PAGE = 500;

/** Every page of a paged read: `next` gives the cursor after a page's last row. */
async function* pages<T, C>(read: (after: C | undefined) => Promise<T[]>, next: (last: T) => C): AsyncGenerator<T[]> {
  let after: C | undefined;
  for (;;) {
    const rows = await read(after);
    if (rows.length === 0) return;
    yield rows;
    if (rows.length < PAGE) return;
    after = next(rows.at(-1)!);
  }
}

export async function* exportRecords(store: Store, req: ExportRequest): AsyncGenerator<ExportRecord> {
  const manifests = new Map<string, Promise<ExportManifestRow | null>>();
  const manifestOf = (h: ExportHostRow): Promise<ExportManifestRow | null> => {
    if (h.image === null) return Promise.resolve(null);
    const key = h.baselineVersion === null ? `image\u0000${h.image.name}\u0000${h.image.version}` : `host\u0000${h.id}`;
    if (!manifests.has(key)) {
      manifests.set(key, h.baselineVersion === null ? store.exports.manifest({ image: h.image }) : store.exports.manifest({ hostId: h.id, baselineVersion: h.baselineVersion }));
    }
    return manifests.get(key)!;
  };
  for await (const hosts of pages((after: string | undefined) => store.exports.pageHosts({ scope: req.scope, after, limit: PAGE }), (h) => h.id)) {
    for (const host of hosts) yield* hostRecords(store, req, host, await manifestOf(host));
  }
}

async function* hostRecords(store: Store, req: ExportRequest, host: ExportHostRow, manifest: ExportManifestRow | null): AsyncGenerator<ExportRecord> {
  const { from, to } = req;
  yield hostRecord(host, manifest);

  const coverage = createCoverage(host, req, {
    lastFull: await store.exports.reportBefore({ hostId: host.id, before: from, kind: 'full' }),
    last: await store.exports.reportBefore({ hostId: host.id, before: from }),
  });
  for await (const reports of pages((after: number | undefined) => store.exports.pageReports({ hostId: host.id, from, to, after, limit: PAGE }), (r) => r.id)) {
    for (const r of reports) coverage.add(r);
  }
  const { coverage: covered, outages } = coverage.finish();
  yield covered;
  yield* outages;

  // A change set's disposition comes from its findings': their dispositions are kept per change set.
  const byChangeSet = new Map<string, Disposition[]>();
  for await (const findings of pages((after: number | undefined) => store.exports.pageFindings({ hostId: host.id, from, to, after, limit: PAGE }), (f) => f.id)) {
    const approvals = await store.exports.approvalsOf(findings.map((f) => f.id));
    for (const f of findings) {
      const record = changeRecord(host, f, approvals.get(f.id) ?? [], req);
      if (f.changeSet !== null) byChangeSet.set(f.changeSet, [...(byChangeSet.get(f.changeSet) ?? []), record.disposition]);
      yield record;
    }
  }
  for await (const sets of pages((after: string | undefined) => store.exports.pageChangeSets({ hostId: host.id, from, to, after, limit: PAGE }), (c) => c.id)) {
    for (const cs of sets) yield changeSetRecord(host, cs, byChangeSet.get(cs.id) ?? []);
  }

  const deliveries: DeliveryRow[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.alertQueue.pageDeliveries({ hostId: host.id, limit: PAGE, after: cursor });
    for (const d of page.deliveries) if (Date.parse(d.createdAt) >= from.getTime()) deliveries.push(d);
    cursor = page.next ?? undefined;
  } while (cursor !== undefined);
  if (deliveries.length > 0) yield* alertRecords(host, deliveries, await store.alertQueue.attemptsOf(deliveries.map((d) => d.id)), req);
}

/** One pass over the records for the summary (the HTML, PDF and JSON put it first). */
export async function exportSummary(store: Store, req: ExportRequest): Promise<ExportSummary> {
  const summary = createSummary(req);
  for await (const r of exportRecords(store, req)) summary.add(r);
  return summary.finish();
}
