// One export from request to bytes: the scope and period parsed, the format chosen, the bytes
// hashed as they stream out and the signed statement made from that digest at the end.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { QuicksandError } from '../../shared/errors.js';
import { hostLabelsSchema } from '../../shared/labels.js';
import type { ExportScope, Store } from '../store/types.js';
import { exportRecords, exportSummary } from './collect.js';
import { toCsv } from './csv.js';
import { toHtml } from './html.js';
import { toJson } from './json.js';
import { exportQuerySchema } from '../../shared/api.js';
import { horizon, scopeText } from './model.js';
import type { ExportFormat, ExportRequest } from './model.js';
import { toOcsf } from './ocsf.js';
import { toPdf } from './pdf.js';
import { exportStatement, signStatement } from './sign.js';
import type { Envelope, SigningKey } from './sign.js';

export const CONTENT_TYPES: Record<ExportFormat, string> = {
  csv: 'text/csv; charset=utf-8',
  json: 'application/json',
  html: 'text/html; charset=utf-8',
  pdf: 'application/pdf',
  ocsf: 'application/x-ndjson',
};
const EXTENSION: Record<ExportFormat, string> = { csv: 'csv', json: 'json', html: 'html', pdf: 'pdf', ocsf: 'ocsf.jsonl' };

/** At most this long a period: a year and a bit covers an annual audit. */
export const MAX_PERIOD_DAYS = 400;

/** `all`, `image:NAME`, `label:KEY=VALUE`, `host:ID`. */
export function parseScope(text: string, where = 'scope'): ExportScope {
  if (text === 'all') return { kind: 'all' };
  const m = /^(image|label|host):(.{1,200})$/s.exec(text);
  if (m === null) throw new QuicksandError('QUERY_INVALID', `${where}: expected all, image:NAME, label:KEY=VALUE or host:ID, got "${text.slice(0, 100)}"`);
  const value = m[2]!;
  if (m[1] === 'image') return { kind: 'image', name: value };
  if (m[1] === 'host') return { kind: 'host', id: value };
  const eq = value.indexOf('=');
  const labels = eq <= 0 ? null : hostLabelsSchema.safeParse({ [value.slice(0, eq)]: value.slice(eq + 1) });
  if (labels === null || !labels.success) throw new QuicksandError('QUERY_INVALID', `${where}: expected label:KEY=VALUE with a label name like env and a value, got "${text.slice(0, 100)}"`);
  return { kind: 'label', key: value.slice(0, eq), value: value.slice(eq + 1) };
}

export { exportQuerySchema };

/** The period checked: from before to, at most MAX_PERIOD_DAYS. */
export function checkPeriod(from: Date, to: Date, where = 'query'): void {
  if (!(from.getTime() < to.getTime())) throw new QuicksandError('QUERY_INVALID', `${where}.from: must be before ${where}.to`);
  if (to.getTime() - from.getTime() > MAX_PERIOD_DAYS * 86_400_000) throw new QuicksandError('QUERY_INVALID', `${where}: a period of at most ${MAX_PERIOD_DAYS} days`);
}

export interface ExportJob {
  name: string;
  contentType: string;
  /** The bytes, as they are made. */
  body: AsyncIterable<Uint8Array>;
  /** The signature of what `body` gave; only once it has been read to its end. */
  signature(): Envelope;
}

/**
 * One export. Its time is the end of the period (or now, if that is still to come), truncated to
 * the second: a past period exported twice gives the same bytes, so its signature can be asked
 * for again.
 */
export function produceExport(store: Store, key: SigningKey, req: { from: Date; to: Date; scope: ExportScope; format: ExportFormat; now: Date; staleAfterMs: number; exportedBy: string }): ExportJob {
  const at = new Date(Math.floor(horizon(req) / 1000) * 1000);
  const request: ExportRequest = { from: req.from, to: req.to, scope: req.scope, now: at, staleAfterMs: req.staleAfterMs };
  const scope = scopeText(req.scope);
  const name = `quicksand-export-${req.from.toISOString().slice(0, 10)}-${req.to.toISOString().slice(0, 10)}-${scope.replace(/[^A-Za-z0-9._=-]+/g, '_')}.${EXTENSION[req.format]}`;
  const hash = createHash('sha256');
  let done = false;
  async function* text(): AsyncGenerator<string | Buffer> {
    const records = exportRecords(store, request);
    switch (req.format) {
      case 'csv':
        return yield* toCsv(records);
      case 'ocsf':
        return yield* toOcsf(records, at.toISOString());
      case 'json':
        return yield* toJson(await exportSummary(store, request), records);
      case 'html':
        return yield* toHtml(await exportSummary(store, request), records);
      case 'pdf':
        return yield* toPdf(await exportSummary(store, request), records);
    }
  }
  async function* body(): AsyncGenerator<Uint8Array> {
    for await (const chunk of text()) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      hash.update(bytes);
      yield bytes;
    }
    done = true;
  }
  let digest: string | null = null;
  return {
    name,
    contentType: CONTENT_TYPES[req.format],
    body: body(),
    signature() {
      if (!done) throw new Error('the export was not read to its end');
      digest ??= hash.digest('hex');
      return signStatement(key, exportStatement(name, digest, { period: { from: req.from.toISOString(), to: req.to.toISOString() }, scope, format: req.format, generatedAt: at.toISOString(), exportedBy: req.exportedBy }));
    },
  };
}
