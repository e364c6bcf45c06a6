// Stores what agents send, on PostgreSQL: each batch is one transaction (the caller acks only
// after it commits). Its hosts' rows are locked first (FOR NO KEY UPDATE, in id order, so two
// nodes never deadlock; NO KEY so that inserts referencing a host, as agent sessions, do not wait
// for the batch), so the hash-chain check and the writes of one host's reports never interleave
// with another node's. (agent, seq) is unique: a replay through any node changes nothing. What a
// batch reads once (labels, alert memories, sinks) is read at its start, not once a report.
import type { Finding } from '../../../shared/report.js';
import type { ContainerReport } from '../../../shared/report.js';
import type { ReportFrame } from '../../../shared/protocol.js';
import type { Severity } from '../../../shared/findings.js';
import { effectiveLabels } from '../../../shared/labels.js';
import { findingKey } from '../../classify.js';
import { identityOf } from '../../alerts/policy.js';
import type { CompiledRules, EvaluatedFinding } from '../../rules.js';
import { reportForStore } from '../config-diffs.js';
import { CHAIN_FINDING_KIND, resolvedByEventReport, withFirstTickets } from '../ingest.js';
import { CLONE_FINDING_KIND } from '../identity.js';
import { storedVerdict } from '../redecide.js';
import type { HostForAlerts } from '../alerting.js';
import type { Ingest, IngestItem, IngestResult } from '../types.js';
import type { AlertBatch, PgAlerting } from './alerting.js';
import { markMissingContainersGone, upsertContainer } from './containers.js';
import type { PgDatabase, Sql } from './db.js';
import { BY_REPORT } from '../host-status.js';
import { countHost, noteStatus, refreshHost } from './host-status.js';
import { observeMachine } from './identity.js';
import { redecidePg } from './redecide.js';

/** One finding row to upsert (the columns that differ between findings of one report). */
interface FindingWrite {
  key: string;
  kind: string;
  severity: string;
  ecosystem: string | null;
  name: string | null;
  path: string | null;
  detail: string;
  changeSet: string | null;
  decision: string | null;
  waived: number;
  identity: string;
  ticket: string | null;
}

const UPSERT_FINDINGS = `INSERT INTO findings AS t (host_id, key, source, kind, severity, ecosystem, name, path, detail, first_seen, last_seen, first_seq, last_seq, change_set, decision, waived, identity, ticket)
  SELECT $1, u.key, $2, u.kind, u.severity, u.ecosystem, u.name, u.path, u.detail, $3, $3, $4, $4, u.change_set, u.decision, u.waived, u.identity, u.ticket
  FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::int[], $15::text[], $16::text[])
    WITH ORDINALITY AS u(key, kind, severity, ecosystem, name, path, detail, change_set, decision, waived, identity, ticket, n)
  ORDER BY u.n
  ON CONFLICT (host_id, key) WHERE resolved_at IS NULL
  DO UPDATE SET severity = excluded.severity, detail = excluded.detail, last_seen = excluded.last_seen, last_seq = excluded.last_seq,
    change_set = excluded.change_set, decision = excluded.decision, waived = excluded.waived, identity = excluded.identity`;

/**
 * All findings of one report in one statement. A key twice in one report is one row, in the
 * place of its first and with the values of its last (as row-by-row upserts leave it).
 */
async function upsertFindings(q: Sql, hostId: string, source: 'scan' | 'server', seq: number, now: string, writes: readonly FindingWrite[]): Promise<void> {
  if (writes.length === 0) return;
  const byKey = new Map<string, number>();
  const rows: FindingWrite[] = [];
  for (const w of writes) {
    const at = byKey.get(w.key);
    if (at === undefined) {
      byKey.set(w.key, rows.length);
      rows.push(w);
    } else rows[at] = w;
  }
  const col = <K>(f: (w: FindingWrite) => K): K[] => rows.map(f);
  await q.run(UPSERT_FINDINGS, [
    hostId,
    source,
    now,
    seq,
    col((w) => w.key),
    col((w) => w.kind),
    col((w) => w.severity),
    col((w) => w.ecosystem),
    col((w) => w.name),
    col((w) => w.path),
    col((w) => w.detail),
    col((w) => w.changeSet),
    col((w) => w.decision),
    col((w) => w.waived),
    col((w) => w.identity),
    col((w) => w.ticket),
  ]);
}

function scanWrite(e: EvaluatedFinding): FindingWrite {
  const f: Finding = e.finding;
  const { severity, waived } = storedVerdict(e);
  return {
    key: findingKey(f),
    kind: f.kind,
    severity,
    ecosystem: f.ecosystem ?? null,
    name: f.name ?? null,
    path: f.path ?? null,
    detail: JSON.stringify(f),
    changeSet: f.changeSet ?? null,
    decision: JSON.stringify(e.decision),
    waived: waived ? 1 : 0,
    identity: identityOf(f),
    ticket: f.ticket ?? null,
  };
}

// Returns the status before (the subquery reads the row as it was), for the status history.
const UPDATE_HOST_AFTER_REPORT = `UPDATE hosts SET hostname = $2, image_name = $3, image_version = $4, status = $5,
    pet_since = CASE WHEN $5 = 'pet' THEN coalesce(hosts.pet_since, $6) ELSE NULL END, drift_score = $7, open_findings = $8, last_seen = $9, last_report_at = $9,
    last_seq = GREATEST(hosts.last_seq, $10), outbox_depth = coalesce($11, hosts.outbox_depth)
  FROM (SELECT id, status AS before FROM hosts WHERE id = $1) old
  WHERE hosts.id = old.id RETURNING old.before`;

/** The host's row after a report, and its status change into the history. */
async function updateHostAfterReport(q: Sql, values: unknown[], receivedAt: Date): Promise<void> {
  const old = await q.row<{ before: string }>(UPDATE_HOST_AFTER_REPORT, values);
  if (old !== undefined) await noteStatus(q, values[0] as string, old.before, values[4] as string, receivedAt, BY_REPORT);
}

/** What a batch read once at its start (its hosts' rows locked), kept current by its own writes. */
interface Batch {
  rules: CompiledRules;
  labels: Map<string, Record<string, string>>;
  alerts: AlertBatch;
  /** The batch's hosts' open findings that carry a ticket, as the batch began: good for each host's first report only. */
  tickets: Map<string, { key: string; ticket: string | null }[]>;
}

const INSERT_REPORT = `WITH prev AS (SELECT hash FROM reports WHERE host_id = $1 AND seq = $2::bigint - 1),
    stored AS (SELECT hash FROM reports WHERE host_id = $1 AND seq = $2::bigint),
    ins AS (INSERT INTO reports (host_id, seq, hash, prev_hash, kind, scanned_at, received_at, status, counts, body)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (host_id, seq) DO NOTHING RETURNING 1)
  SELECT (SELECT count(*) FROM ins)::int AS inserted, (SELECT hash FROM prev) AS prev, (SELECT hash FROM stored) AS stored`;

export function createPgIngest(db: PgDatabase, alerting: PgAlerting): Ingest {
  // An image's last_seen to the minute is plenty; writing it on every report is not.
  const imageTouched = new Map<string, number>();
  async function touchImage(q: Sql, name: string, version: string, at: Date): Promise<void> {
    const key = `${name}\u0000${version}`;
    if ((imageTouched.get(key) ?? -Infinity) > at.getTime() - 60_000) return;
    imageTouched.set(key, at.getTime());
    await q.run(
      `INSERT INTO images (name, version, source, first_seen, last_seen) VALUES ($1, $2, 'announced', $3, $3)
       ON CONFLICT (name, version) DO UPDATE SET last_seen = excluded.last_seen`,
      [name, version, at.toISOString()],
    );
  }

  /** A finding of the server's own; seen again, it stays one open row with a new last_seen. */
  async function raise(q: Sql, hostId: string, f: { key: string; kind: string; severity: Severity; detail: unknown; seq: number; now: string }): Promise<void> {
    await upsertFindings(q, hostId, 'server', f.seq, f.now, [
      { key: f.key, kind: f.kind, severity: f.severity, ecosystem: null, name: null, path: null, detail: JSON.stringify(f.detail), changeSet: null, decision: null, waived: 0, identity: f.key, ticket: null },
    ]);
  }

  const recordChainBreak = (q: Sql, hostId: string, seq: number, reason: string, now: string, what: 'link' | 'replay'): Promise<void> =>
    raise(q, hostId, { key: `${CHAIN_FINDING_KIND}|${what}|${seq}`, kind: CHAIN_FINDING_KIND, severity: 'high', detail: { seq, reason }, seq, now });

  /** The report must name the hash of this agent's report seq-1 (see ../ingest.ts); `prev` is that report's stored hash. */
  async function checkChain(q: Sql, hostId: string, frame: ReportFrame, prev: string | null, now: string): Promise<boolean> {
    let problem: string | null = null;
    if (frame.seq === 1) {
      if (frame.prevHash !== null) problem = 'the first report names a predecessor';
    } else {
      if (prev === null) problem = `report ${frame.seq - 1} never arrived`;
      else if (prev !== frame.prevHash) problem = `report ${frame.seq} names predecessor ${frame.prevHash ?? 'none'}, the stored report ${frame.seq - 1} is ${prev}`;
    }
    if (problem === null) return false;
    await recordChainBreak(q, hostId, frame.seq, problem, now, 'link');
    return true;
  }

  /** Each finding with the ticket it carried when the server first saw it (see withFirstTickets). */
  async function ticketsAtFirstSight(q: Sql, batch: Batch, hostId: string, findings: readonly Finding[]): Promise<Finding[]> {
    const carried = findings.some((f) => f.ticket !== undefined);
    // Read at the batch's start: nothing of this host was written since (its first report here).
    const read = batch.tickets.get(hostId);
    batch.tickets.delete(hostId);
    if (read !== undefined && !carried) return withFirstTickets(findings, read);
    const known = await q.rows<{ key: string; ticket: string | null }>(
      carried
        ? `SELECT key, ticket FROM findings WHERE host_id = $1 AND resolved_at IS NULL AND source = 'scan'`
        : `SELECT key, ticket FROM findings WHERE host_id = $1 AND resolved_at IS NULL AND ticket IS NOT NULL`,
      [hostId],
    );
    return withFirstTickets(findings, known);
  }

  /** The rules with each finding's own ticket; one pass when they all carry the same (usually none). */
  function evaluateWithTickets(rules: CompiledRules, findings: readonly Finding[], host: HostForAlerts, image: { name: string }, at: Date): EvaluatedFinding[] {
    const first = findings[0]?.ticket;
    if (findings.every((f) => f.ticket === first)) return alerting.evaluate(rules, findings, host, image, at, first);
    return findings.map((f) => alerting.evaluate(rules, [f], host, image, at, f.ticket)[0]!);
  }

  async function resolveMissing(q: Sql, hostId: string, seq: number, now: string): Promise<void> {
    await q.run(`UPDATE findings SET resolved_at = $1 WHERE host_id = $2 AND resolved_at IS NULL AND source = 'scan' AND last_seq < $3`, [now, hostId, seq]);
  }

  async function storeReport(q: Sql, batch: Batch, agentId: string, frame: ReportFrame, receivedAt: Date): Promise<IngestResult> {
    const { rules } = batch;
    const now = receivedAt.toISOString();
    // Config texts become their diffs before anything of the report is written.
    const report = reportForStore(frame.report);
    // One round trip: the insert, the predecessor's hash for the chain check, and (when this seq
    // is already stored) the stored hash, both as they were before this statement.
    const r = (await q.row<{ inserted: number; prev: string | null; stored: string | null }>(INSERT_REPORT, [
      agentId,
      frame.seq,
      frame.hash,
      frame.prevHash,
      frame.kind,
      report.scannedAt,
      now,
      report.summary.status,
      JSON.stringify(report.summary.counts),
      JSON.stringify(report),
    ]))!;
    if (r.inserted === 0) {
      // The same seq with other content is no replay: the agent's history was reset or rewritten.
      const stored = r.stored;
      const rewritten = stored !== null && stored !== frame.hash;
      if (rewritten) await recordChainBreak(q, agentId, frame.seq, `report ${frame.seq} was sent again with other content (${frame.hash}, stored ${stored}): the agent's outbox was reset or rewritten`, now, 'replay');
      return { type: 'report', seq: frame.seq, outcome: 'duplicate', chainBroken: rewritten };
    }

    const chainBroken = await checkChain(q, agentId, frame, r.prev, now);
    for (const cs of report.changeSets ?? []) {
      await q.run(
        `INSERT INTO change_sets AS t (host_id, id, tool, command, user_name, started_at, ended_at, packages, ticket, first_seen, last_seen)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
         ON CONFLICT (host_id, id) DO UPDATE SET last_seen = excluded.last_seen, packages = excluded.packages, command = coalesce(excluded.command, t.command),
           ticket = coalesce(t.ticket, excluded.ticket)`,
        [agentId, cs.id, cs.tool, cs.command ?? null, cs.user ?? null, cs.start ?? null, cs.end ?? null, cs.packages, cs.ticket ?? null, now],
      );
    }
    const host = { id: agentId, hostname: report.host.hostname, labels: batch.labels.get(agentId) ?? (await alerting.labelsOf(q, agentId)) };
    const evaluated = evaluateWithTickets(rules, await ticketsAtFirstSight(q, batch, agentId, report.findings), host, report.image, receivedAt);
    await upsertFindings(q, agentId, 'scan', frame.seq, now, evaluated.map(scanWrite));
    if (frame.kind === 'full') await resolveMissing(q, agentId, frame.seq, now);
    else if (report.scope !== undefined) {
      const open = await q.rows<{ id: number; kind: string; path: string | null }>(
        `SELECT id, kind, path FROM findings WHERE host_id = $1 AND resolved_at IS NULL AND source = 'scan' AND last_seq < $2 ORDER BY id`,
        [agentId, frame.seq],
      );
      const gone = resolvedByEventReport(report, open);
      if (gone.length > 0) await q.run('UPDATE findings SET resolved_at = $1 WHERE id = ANY($2::bigint[])', [now, gone]);
    }
    if (report.watch !== undefined) await q.run('UPDATE hosts SET watch_state = $1, watch_reason = $2 WHERE id = $3', [report.watch.state, report.watch.reason ?? null, agentId]);

    const { status, score, open } = await countHost(q, agentId, receivedAt);
    await updateHostAfterReport(q, [agentId, report.host.hostname, report.image.name, report.image.version, status, report.scannedAt, score, open, now, frame.seq, frame.outboxDepth ?? null], receivedAt);
    await touchImage(q, report.image.name, report.image.version, receivedAt);
    await alerting.alert(q, host, report.image, evaluated, status, receivedAt, batch.alerts);
    if (report.containers !== undefined && frame.kind === 'full') {
      for (const c of report.containers) await storeContainer(q, batch, agentId, host, c, frame, receivedAt);
      await markMissingContainersGone(q, agentId, frame.seq, now);
    }
    return { type: 'report', seq: frame.seq, outcome: 'stored', chainBroken };
  }

  /** One container of a full report, as a child of its host (see ../ingest.ts storeContainer). */
  async function storeContainer(q: Sql, batch: Batch, agentId: string, parent: { hostname: string; labels: Record<string, string> }, c: ContainerReport, frame: ReportFrame, receivedAt: Date): Promise<void> {
    const now = receivedAt.toISOString();
    const id = await upsertContainer(q, agentId, parent.hostname, c, frame.seq, now);
    if (c.state === 'gone' || c.state === 'unknown') return;
    const host = { id, hostname: `${parent.hostname}/${c.name ?? c.id.slice(0, 12)}`, labels: parent.labels };
    const image = { name: c.image.ref ?? c.image.id ?? 'unknown', version: c.image.id ?? 'unknown' };
    const { rules, alerts } = batch;
    const evaluated = evaluateWithTickets(rules, await ticketsAtFirstSight(q, batch, id, c.findings), host, image, receivedAt);
    await upsertFindings(q, id, 'scan', frame.seq, now, evaluated.map(scanWrite));
    await resolveMissing(q, id, frame.seq, now);
    const { status, score, open } = await countHost(q, id, receivedAt);
    await updateHostAfterReport(q, [id, host.hostname, image.name, image.version, status, frame.report.scannedAt, score, open, now, frame.seq, null], receivedAt);
    await alerting.alert(q, host, image, evaluated, status, receivedAt, alerts);
  }

  /** Critical: two machines share one identity (see ../ingest.ts recordClone). */
  async function recordClone(q: Sql, agentId: string, hello: IngestItem & { type: 'hello' }, clone: { key: string; reason: string }): Promise<void> {
    const { host } = hello.frame;
    const detail = { reason: clone.reason, hostname: host.hostname, machineId: host.machineId ?? null, bootId: host.bootId ?? null };
    await raise(q, agentId, { key: clone.key, kind: CLONE_FINDING_KIND, severity: 'critical', detail, seq: Math.max(1, hello.frame.lastAckedSeq), now: hello.receivedAt.toISOString() });
    await refreshHost(q, agentId, hello.receivedAt, { cause: 'hello', actor: null });
  }

  /** The agent's own labels changed: the rules may decide its open findings otherwise now. */
  async function declareLabels(q: Sql, batch: Batch, agentId: string, declared: Record<string, string>, at: Date): Promise<void> {
    const row = await q.row<{ labels_agent: string; labels_api: string; hostname: string; image_name: string | null; image_version: string | null }>(
      'SELECT labels_agent, labels_api, hostname, image_name, image_version FROM hosts WHERE id = $1',
      [agentId],
    );
    if (row === undefined || row.labels_agent === JSON.stringify(declared)) return;
    const labels = effectiveLabels(declared, JSON.parse(row.labels_api) as Record<string, string>);
    await q.run('UPDATE hosts SET labels_agent = $1, labels = $2 WHERE id = $3', [JSON.stringify(declared), JSON.stringify(labels), agentId]);
    batch.labels.set(agentId, labels);
    if ((await redecidePg(q, alerting, agentId, at)).size === 0) return;
    const { before, after } = await refreshHost(q, agentId, at, { cause: 'labels', actor: null });
    if (after === 'cattle' && before !== 'cattle') {
      await alerting.alert(q, { id: agentId, hostname: row.hostname, labels }, { name: row.image_name ?? '', version: row.image_version ?? '' }, [], 'cattle', at, batch.alerts);
    }
  }

  async function storeItem(q: Sql, batch: Batch, item: IngestItem): Promise<IngestResult> {
    const now = item.receivedAt.toISOString();
    switch (item.type) {
      case 'report':
        return storeReport(q, batch, item.agentId, item.frame, item.receivedAt);
      case 'hello': {
        const { frame } = item;
        // The second machine's hello does not rename the host or speak for its labels.
        const clone = await observeMachine(q, item.agentId, frame);
        if (clone !== null) {
          await recordClone(q, item.agentId, item, clone);
          return { type: 'other' };
        }
        await q.run(
          `UPDATE hosts SET hostname = $2, os = $3, agent_version = $4, last_seen = $5, outbox_depth = $6,
             image_name = coalesce($7, image_name), image_version = coalesce($8, image_version), baseline_version = $9
           WHERE id = $1`,
          [item.agentId, frame.host.hostname, frame.host.os ?? null, frame.host.agentVersion ?? null, now, frame.outboxDepth, frame.image?.name ?? null, frame.image?.version ?? null, frame.baseline ?? null],
        );
        if (frame.image !== null) await touchImage(q, frame.image.name, frame.image.version, item.receivedAt);
        if (frame.labels !== undefined) await declareLabels(q, batch, item.agentId, frame.labels, item.receivedAt);
        return { type: 'other' };
      }
      case 'heartbeat':
        await q.run('UPDATE hosts SET last_seen = $1, outbox_depth = $2 WHERE id = $3', [now, item.outboxDepth, item.agentId]);
        return { type: 'other' };
    }
  }

  return {
    async ingestBatch(items) {
      if (items.length === 0) return [];
      try {
        return await db.tx(async (q) => {
          const ids = [...new Set(items.map((i) => i.agentId))].sort();
          const locked = await q.rows<{ id: string; labels: string }>('SELECT id, labels FROM hosts WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE', [ids]);
          const batch: Batch = {
            rules: await alerting.rules(q),
            labels: new Map(locked.map((h) => [h.id, JSON.parse(h.labels) as Record<string, string>])),
            alerts: await alerting.startBatch(q, ids),
            tickets: new Map(),
          };
          const reporting = [...new Set(items.filter((i) => i.type === 'report').map((i) => i.agentId))];
          if (reporting.length > 0) {
            for (const id of reporting) batch.tickets.set(id, []);
            const ticketed = await q.rows<{ host_id: string; key: string; ticket: string | null }>(
              `SELECT host_id, key, ticket FROM findings WHERE host_id = ANY($1::text[]) AND resolved_at IS NULL AND ticket IS NOT NULL`,
              [reporting],
            );
            for (const t of ticketed) batch.tickets.get(t.host_id)?.push(t);
          }
          const results: IngestResult[] = [];
          for (const item of items) results.push(await storeItem(q, batch, item));
          await alerting.finishBatch(q, batch.alerts);
          return results;
        });
      } catch (err) {
        // Rolled back: what the cache says was written may not be.
        imageTouched.clear();
        throw err;
      }
    },
  };
}
