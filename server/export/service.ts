// What the API and the command line ask of exports: run one (audited), its signature, the public
// key, and a host's attestation. server.ts builds it and hands it to the API (a peer folder).
import type { Actor, Store } from '../store/types.js';
import { QuicksandError } from '../../shared/errors.js';
import { formatIssues } from '../../shared/schema-errors.js';
import { checkPeriod, exportQuerySchema, parseScope, produceExport } from './produce.js';
import type { ExportJob } from './produce.js';
import { HOST_PREDICATE, STATEMENT_TYPE, signStatement } from './sign.js';
import type { Envelope, SigningKey } from './sign.js';
import { scopeText } from './model.js';

export interface ExportService {
  publicKeyPem: string;
  keyid: string;
  /** Parses the query (`from`, `to`, `scope`, `format`, `signature`), audits the export and starts it. */
  run(query: Record<string, string>, actor: Actor, now: Date): Promise<{ job: ExportJob; signatureOnly: boolean }>;
  /** The signature of the last export served of this query (else of `job`, read to its end now). */
  signatureOf(query: Record<string, string>, job: ExportJob): Promise<Envelope>;
  /** Remembers the signature of an export read to its end, for `&signature=1`. */
  remember(query: Record<string, string>, job: ExportJob): void;
  attest(hostId: string, now: Date): Promise<Envelope>;
}

const KEPT = 64;

export function createExportService(store: Store, key: SigningKey, staleAfterMs: number): ExportService {
  const kept = new Map<string, Envelope>();
  const keyOf = (query: Record<string, string>): string => JSON.stringify([query.from, query.to, query.scope ?? 'all', query.format]);
  return {
    publicKeyPem: key.publicPem,
    keyid: key.keyid,
    async run(query, actor, now) {
      const parsed = exportQuerySchema.safeParse(query);
      if (!parsed.success) throw new QuicksandError('QUERY_INVALID', `query: ${formatIssues(parsed.error).replaceAll('\n', '; ')}`);
      const q = parsed.data;
      const from = new Date(q.from);
      const to = new Date(q.to);
      checkPeriod(from, to);
      const scope = parseScope(q.scope, 'query.scope');
      const signatureOnly = q.signature === '1';
      await store.triage.audit({ actor, action: signatureOnly ? 'export-signature' : 'export', target: `export:${scopeText(scope)}`, detail: { from: from.toISOString(), to: to.toISOString(), scope: scopeText(scope), format: q.format }, now });
      return { job: produceExport(store, key, { from, to, scope, format: q.format, now, staleAfterMs, exportedBy: actor.name ?? actor.id }), signatureOnly };
    },
    async signatureOf(query, job) {
      const known = kept.get(keyOf(query));
      if (known !== undefined) return known;
      for await (const chunk of job.body) void chunk;
      return job.signature();
    },
    remember(query, job) {
      kept.delete(keyOf(query));
      kept.set(keyOf(query), job.signature());
      while (kept.size > KEPT) kept.delete(kept.keys().next().value!);
    },
    async attest(hostId, now) {
      const host = await store.getHost(hostId, now);
      if (host === null) throw new QuicksandError('NOT_FOUND', `host ${hostId} is not known`);
      const refuse = (why: string): never => {
        throw new QuicksandError('CONFLICT', `host ${hostId} cannot be attested: ${why}`);
      };
      if (host.revoked) refuse('its agent was revoked');
      if (host.status === 'stale') refuse(`it is stale: no report since ${host.lastReportAt ?? 'never'}`);
      if (host.status === 'enrolled') refuse('it has not reported yet');
      if (host.status === 'pet') refuse(`it is a pet: ${host.openFindings} open change(s) not approved`);
      if (host.image === null) refuse('it has announced no image');
      const image = host.image!;
      const manifest = host.baselineVersion === null ? await store.exports.manifest({ image }) : await store.exports.manifest({ hostId, baselineVersion: host.baselineVersion });
      if (manifest === null) refuse(`the server holds no manifest of ${image.name} ${image.version}${host.baselineVersion === null ? '' : ` baseline ${host.baselineVersion}`}`);
      const full = await store.exports.reportBefore({ hostId, before: new Date(now.getTime() + 1), kind: 'full' });
      if (full === null) refuse('it has no full scan');
      return signStatement(key, {
        _type: STATEMENT_TYPE,
        subject: [{ name: `host:${hostId}`, digest: { sha256: manifest!.sha256 } }],
        predicateType: HOST_PREDICATE,
        predicate: {
          host: hostId,
          hostname: host.hostname,
          machineId: host.machineId,
          matched: { image: image.name, version: image.version, manifestSha256: manifest!.sha256, baselineVersion: host.baselineVersion },
          status: host.status,
          at: now.toISOString(),
          lastFullScan: { seq: full!.seq, scannedAt: full!.scannedAt, receivedAt: full!.receivedAt },
        },
      });
    },
  };
}
