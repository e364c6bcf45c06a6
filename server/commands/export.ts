// `quicksand-server export`: a signed compliance export of a period to a file, for cron jobs.
import { createWriteStream, writeFileSync } from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { QuicksandError } from '../../shared/errors.js';
import type { OptionValues } from '../../shared/command-line.js';
import { EXPORT_FORMATS } from '../export/model.js';
import type { ExportFormat } from '../export/model.js';
import { checkPeriod, parseScope, produceExport } from '../export/produce.js';
import { loadOrCreateSigningKey } from '../export/sign.js';
import { DEFAULT_STALE_AFTER_MS } from '../store/sqlite-store.js';
import type { ExportScope } from '../store/types.js';
import { COMMON, DB_HELP, EXIT_OK, cliActor, database, withStore } from './common.js';
import type { ServerCliIo } from './common.js';

export const help = `Usage: quicksand-server export --from ISO --to ISO [--image NAME | --label KEY=VALUE | --host ID]
                              --format csv|json|html|pdf|ocsf --out FILE [--db FILE]

Writes the compliance export of a period to FILE and its signature (an in-toto statement in a
DSSE envelope, signed with the server's key) to FILE.sig.json. Check it with
\`quicksand-server verify-export FILE\`. The export is in the audit log (export, by cli:USER).

Options:
  --from ISO            start of the period, e.g. 2026-11-01T00:00:00Z
  --to ISO              end of the period (at most 400 days after --from)
  --image NAME          only hosts of this image
  --label KEY=VALUE     only hosts with this label
  --host ID             only this host
  --format FORMAT       csv, json, html, pdf or ocsf (OCSF JSON lines)
  --out FILE            where to write it (the signature goes to FILE.sig.json)
${DB_HELP}
Example:
  quicksand-server export --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z --image web --format pdf --out web-november.pdf
`;

export const options = {
  ...COMMON,
  from: { type: 'string' },
  to: { type: 'string' },
  image: { type: 'string' },
  label: { type: 'string' },
  host: { type: 'string' },
  format: { type: 'string' },
  out: { type: 'string' },
} as const;

function date(flag: string, text: unknown): Date {
  if (typeof text !== 'string') throw new QuicksandError('USAGE', `--${flag} is required (an ISO time like 2026-11-01T00:00:00Z)`);
  const ms = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(ms)) throw new QuicksandError('USAGE', `--${flag}: expected an ISO time like 2026-11-01T00:00:00Z, got "${text}"`);
  return new Date(ms);
}

export async function run(values: OptionValues, positionals: string[], io: ServerCliIo): Promise<number> {
  if (positionals.length > 0) throw new QuicksandError('USAGE', `unexpected argument "${positionals[0]}"`);
  const from = date('from', values.from);
  const to = date('to', values.to);
  try {
    checkPeriod(from, to, '--');
  } catch (err) {
    throw new QuicksandError('USAGE', (err as Error).message.replace('--.from', '--from').replace('--.to', '--to').replace('--: ', ''));
  }
  const scopes = (['image', 'label', 'host'] as const).filter((k) => values[k] !== undefined);
  if (scopes.length > 1) throw new QuicksandError('USAGE', `--${scopes[0]} and --${scopes[1]}: give at most one scope`);
  let scope: ExportScope = { kind: 'all' };
  if (scopes.length === 1) {
    try {
      scope = parseScope(`${scopes[0]}:${values[scopes[0]!] as string}`, `--${scopes[0]}`);
    } catch (err) {
      throw new QuicksandError('USAGE', (err as Error).message);
    }
  }
  const format = values.format as string | undefined;
  if (format === undefined || !(EXPORT_FORMATS as readonly string[]).includes(format)) throw new QuicksandError('USAGE', `--format: expected one of ${EXPORT_FORMATS.join(', ')}${format === undefined ? '' : `, got "${format}"`}`);
  const out = values.out as string | undefined;
  if (out === undefined) throw new QuicksandError('USAGE', '--out FILE is required');
  const db = database(values);
  return withStore(db, async (store) => {
    const key = loadOrCreateSigningKey(path.dirname(path.resolve(db)));
    const actor = cliActor();
    const now = new Date();
    await store.triage.audit({ actor, action: 'export', target: `export:${scope.kind === 'all' ? 'all' : `${scopes[0]}:${values[scopes[0]!] as string}`}`, detail: { from: from.toISOString(), to: to.toISOString(), format, out: path.basename(out) }, now });
    const job = produceExport(store, key, { from, to, scope, format: format as ExportFormat, now, staleAfterMs: DEFAULT_STALE_AFTER_MS, exportedBy: actor.id });
    const file = createWriteStream(out, { mode: 0o640 });
    for await (const chunk of job.body) if (!file.write(chunk)) await once(file, 'drain');
    file.end();
    await once(file, 'finish');
    writeFileSync(`${out}.sig.json`, `${JSON.stringify(job.signature(), null, 2)}\n`);
    io.stdout(`wrote ${out} and ${out}.sig.json (${job.name})\n`);
    return EXIT_OK;
  });
}
