// JSON: the summary, then every record, written as it comes (one record per line inside the array).
import type { ExportRecord, ExportSummary } from './model.js';
import { CONTROLS } from './controls.js';

export const EXPORT_JSON_SCHEMA = 'quicksand.export/v1';

export async function* toJson(summary: ExportSummary, records: AsyncIterable<ExportRecord>): AsyncGenerator<string> {
  yield `{"schema":${JSON.stringify(EXPORT_JSON_SCHEMA)},"summary":${JSON.stringify(summary)},"controls":${JSON.stringify(CONTROLS)},"records":[`;
  let first = true;
  for await (const r of records) {
    yield `${first ? '\n' : ',\n'}${JSON.stringify(r)}`;
    first = false;
  }
  yield '\n]}\n';
}
