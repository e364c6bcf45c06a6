// CSV, streamed: one line per record as it comes, no row limit. A cell a spreadsheet would run
// as a formula (= + - @, tab, CR at its start) gets a leading apostrophe, so it opens as text.
import { COLUMNS, cell } from './columns.js';
import type { ExportRecord } from './model.js';

const FORMULA_START = /^[=+\-@\t\r]/;

/** One CSV field: neutralised, then quoted when it holds a comma, quote or line break (RFC 4180). */
export function csvField(text: string): string {
  const inert = FORMULA_START.test(text) ? `'${text}` : text;
  return /[",\r\n]/.test(inert) ? `"${inert.replaceAll('"', '""')}"` : inert;
}

export async function* toCsv(records: AsyncIterable<ExportRecord>): AsyncGenerator<string> {
  yield `${COLUMNS.join(',')}\r\n`;
  let lines: string[] = [];
  for await (const r of records) {
    lines.push(`${COLUMNS.map((c) => csvField(cell(r, c))).join(',')}\r\n`);
    if (lines.length >= 256) {
      yield lines.join('');
      lines = [];
    }
  }
  if (lines.length > 0) yield lines.join('');
}
