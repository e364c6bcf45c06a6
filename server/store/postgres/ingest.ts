// Stores what agents send, on PostgreSQL: each batch is one transaction (the caller acks only
// after it commits). Its hosts' rows are locked first (FOR NO KEY UPDATE, in id order, so two
// nodes never deadlock; NO KEY so that inserts referencing a host, as agent sessions, do not wait
// for the batch), so the hash-chain check and the writes of one host's reports never interleave
// with another node's. (agent, seq) is unique: a replay through any node changes nothing. What a
// batch reads once (labels, alert memories, sinks) is read at its start, not once a report. The
// reports go in rounds (each agent's k-th item; see storeRounds) and each step of a round is one
// statement over arrays (unnest) for all its hosts, not one per report: a statement costs
// PostgreSQL far more than a row does.
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
import { BY_REPORT, countAfterAdding } from '../host-status.js';
import { countHost, countHosts, noteStatuses, refreshHost } from './host-status.js';
import type { PgHostCount } from './host-status.js';
import { observeMachine } from './identity.js';
import { storeHeartbeats } from './liveness.js';
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

/** One report's findings, of one host at one seq. */
interface FindingsOf {
  hostId: string;
  seq: number;
  now: string;
  writes: readonly FindingWrite[];
}

// What the count of each host's open findings (host-status.ts) must know of the upsert: per host
// and severity, the new rows not waived, and whether an open row changed what the count reads
// (counted_seq moves to this seq only then, or when the row is new): its severity, its waiver,
// or its identity when an approval names the finding (an approval holds for one identity; an
// event report's re-seen file has a new one each time, and most findings have no approval).
const UPSERT_FINDINGS = `WITH up AS (INSERT INTO findings AS t (host_id, key, source, kind, severity, ecosystem, name, path, detail, first_seen, last_seen, first_seq, last_seq, change_set, decision, waived, identity, ticket, counted_seq)
  SELECT u.host_id, u.key, $1, u.kind, u.severity, u.ecosystem, u.name, u.path, u.detail, u.now, u.now, u.seq, u.seq, u.change_set, u.decision, u.waived, u.identity, u.ticket, u.seq
  FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::int[], $15::text[], $16::text[])
    WITH ORDINALITY AS u(host_id, seq, now, key, kind, severity, ecosystem, name, path, detail, change_set, decision, waived, identity, ticket, n)
  ORDER BY u.n
  ON CONFLICT (host_id, key) WHERE resolved_at IS NULL
  DO UPDATE SET severity = excluded.severity, detail = excluded.detail, last_seen = excluded.last_seen, last_seq = excluded.last_seq,
    change_set = excluded.change_set, decision = excluded.decision, waived = excluded.waived, identity = excluded.identity,
    counted_seq = CASE WHEN t.severity IS DISTINCT FROM excluded.severity OR t.waived IS DISTINCT FROM excluded.waived
        OR (t.identity IS DISTINCT FROM excluded.identity AND EXISTS (SELECT 1 FROM approvals a WHERE a.finding_id = t.id AND a.reopened_at IS NULL))
      THEN excluded.last_seq ELSE t.counted_seq END
  RETURNING t.host_id, t.severity, t.waived, t.xmax = 0 AS inserted, t.counted_seq IS NOT DISTINCT FROM t.last_seq AS touched)
  SELECT host_id, severity, (count(*) FILTER (WHERE inserted AND waived = 0))::int AS n, bool_or(NOT inserted) AS changed FROM up WHERE touched GROUP BY host_id, severity`;

/** What an upsert did to the count of each host it touched (absent: nothing). */
interface CountChange {
  /** The new findings not waived, by severity. */
  added: Array<{ severity: string; n: number }>;
  /** An open finding changed a column the count reads: only counting again tells. */
  changed: boolean;
}

/**
 * The findings of several reports (of distinct hosts) in one statement. A key twice in one report
 * is one row, in the place of its first and with the values of its last (as row-by-row upserts leave it).
 */
async function upsertFindings(q: Sql, source: 'scan' | 'server', reports: readonly FindingsOf[]): Promise<Map<string, CountChange>> {
  const rows: Array<FindingWrite & { hostId: string; seq: number; now: string }> = [];
  for (const r of reports) {
    const byKey = new Map<string, number>();
    for (const w of r.writes) {
      const at = byKey.get(w.key);
      const row = { ...w, hostId: r.hostId, seq: r.seq, now: r.now };
      if (at === undefined) {
        byKey.set(w.key, rows.length);
        rows.push(row);
      } else rows[at] = row;
    }
  }
  const changes = new Map<string, CountChange>();
  if (rows.length === 0) return changes;
  const col = <K>(f: (w: (typeof rows)[number]) => K): K[] => rows.map(f);
  const touched = await q.rows<{ host_id: string; severity: string; n: number; changed: boolean }>(UPSERT_FINDINGS, [
    source,
    col((w) => w.hostId),
    col((w) => w.seq),
    col((w) => w.now),
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
  for (const t of touched) {
    const c = changes.get(t.host_id) ?? { added: [], changed: false };
    c.added.push({ severity: t.severity, n: t.n });
    c.changed ||= t.changed;
    changes.set(t.host_id, c);
  }
  return changes;
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

/** A host's row after a report. */
interface HostWrite {
  id: string;
  hostname: string;
  imageName: string;
  imageVersion: string;
  status: 'cattle' | 'pet';
  scannedAt: string;
  score: number;
  open: number;
  now: Date;
  seq: number;
  outboxDepth: number | null;
  recountAt: string | null;
}

// Returns each row's status before (the subquery reads the rows as they were), for the status history.
// A report without an outbox depth keeps the latest one known: a heartbeat's when it came after the row's.
const UPDATE_HOSTS_AFTER_REPORT = `UPDATE hosts SET hostname = u.hostname, image_name = u.image_name, image_version = u.image_version, status = u.status,
    pet_since = CASE WHEN u.status = 'pet' THEN coalesce(hosts.pet_since, u.scanned_at) ELSE NULL END, drift_score = u.score, open_findings = u.open,
    recount_at = u.recount_at,
    last_seen = u.now, last_report_at = u.now, last_seq = GREATEST(hosts.last_seq, u.seq), outbox_depth = coalesce(u.outbox_depth,
      (SELECT b.outbox_depth FROM host_heartbeats b WHERE b.host_id = hosts.id AND b.seen_at >= coalesce(hosts.last_seen, '')), hosts.outbox_depth)
  FROM (SELECT u.*, h.status AS before FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::int[], $9::text[], $10::bigint[], $11::bigint[], $12::text[])
          WITH ORDINALITY AS u(id, hostname, image_name, image_version, status, scanned_at, score, open, now, seq, outbox_depth, recount_at, n)
        JOIN hosts h ON h.id = u.id) u
  WHERE hosts.id = u.id RETURNING u.n::int AS n, u.before`;

/** The rows of distinct hosts after their reports, and their status changes into the history, in two statements. */
async function updateHostsAfterReport(q: Sql, writes: readonly HostWrite[]): Promise<void> {
  if (writes.length === 0) return;
  const col = <K>(f: (w: HostWrite) => K): K[] => writes.map(f);
  const old = await q.rows<{ n: number; before: string }>(UPDATE_HOSTS_AFTER_REPORT, [
    col((w) => w.id),
    col((w) => w.hostname),
    col((w) => w.imageName),
    col((w) => w.imageVersion),
    col((w) => w.status),
    col((w) => w.scannedAt),
    col((w) => w.score),
    col((w) => w.open),
    col((w) => w.now.toISOString()),
    col((w) => w.seq),
    col((w) => w.outboxDepth),
    col((w) => w.recountAt),
  ]);
  const changes = old.sort((a, b) => a.n - b.n).map((o) => {
    const w = writes[o.n - 1]!;
    return { hostId: w.id, before: o.before, after: w.status, now: w.now };
  });
  await noteStatuses(q, changes, BY_REPORT);
}

/** What a batch read once at its start (its hosts' rows locked), kept current by its own writes. */
interface Batch {
  rules: CompiledRules;
  labels: Map<string, Record<string, string>>;
  alerts: AlertBatch;
  /** The batch's hosts' open findings that carry a ticket, as the batch began: good for each host's first report only. */
  tickets: Map<string, { key: string; ticket: string | null }[]>;
  /** The batch's hosts' stored counts, kept current by its reports; a host absent is counted again. */
  counted: Map<string, StoredCount>;
}

/** A host's count as its row keeps it (see migration 7). */
interface StoredCount {
  score: number;
  open: number;
  recountAt: string | null;
}

// For each report (of distinct hosts): whether it went in, the predecessor's hash for the chain
// check and (when its seq is already stored) the stored hash, both as they were before this statement.
const INSERT_REPORTS = `WITH u AS (
      SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
        WITH ORDINALITY AS u(host_id, seq, hash, prev_hash, kind, scanned_at, received_at, status, counts, body, n)),
    ins AS (INSERT INTO reports (host_id, seq, hash, prev_hash, kind, scanned_at, received_at, status, counts, body)
            SELECT host_id, seq, hash, prev_hash, kind, scanned_at, received_at, status, counts, body FROM u ORDER BY n
            ON CONFLICT (host_id, seq) DO NOTHING RETURNING host_id, seq)
  SELECT u.n::int AS n, ins.seq IS NOT NULL AS inserted, p.hash AS prev, s.hash AS stored
  FROM u LEFT JOIN ins ON ins.host_id = u.host_id AND ins.seq = u.seq
    LEFT JOIN reports p ON p.host_id = u.host_id AND p.seq = u.seq - 1
    LEFT JOIN reports s ON s.host_id = u.host_id AND s.seq = u.seq`;

// Each host's stale findings through its own probe of its open findings (findings_open): OFFSET 0
// keeps the planner from flattening the LATERAL into a join, which it planned (for the 360 full
// reports of a ramp's round) as a hash of every open finding of the table, 310 ms to 1.45 s a
// round. No index on last_seq: every full report rewrites it in every finding it names, which
// an index on it would turn from HOT updates into an entry in each of the table's indexes.
const STALE_SCAN_FINDINGS = `unnest($1::text[], $2::bigint[], $3::text[]) AS u(host_id, seq, now)
  CROSS JOIN LATERAL (SELECT f.id, f.kind, f.path FROM findings f
    WHERE f.host_id = u.host_id AND f.resolved_at IS NULL AND f.source = 'scan' AND f.last_seq < u.seq OFFSET 0) s`;

const RESOLVE_MISSING = `UPDATE findings f SET resolved_at = u.now FROM ${STALE_SCAN_FINDINGS} WHERE f.id = s.id`;

type ReportItem = IngestItem & { type: 'report' };

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
    await upsertFindings(q, 'server', [
      {
        hostId,
        seq: f.seq,
        now: f.now,
        writes: [{ key: f.key, kind: f.kind, severity: f.severity, ecosystem: null, name: null, path: null, detail: JSON.stringify(f.detail), changeSet: null, decision: null, waived: 0, identity: f.key, ticket: null }],
      },
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

  /** ticketsAtFirstSight for the reports of distinct hosts: those the batch's start does not answer in one statement. */
  async function ticketsOfRound(q: Sql, batch: Batch, reports: ReadonlyArray<{ hostId: string; findings: readonly Finding[] }>): Promise<Finding[][]> {
    const out: Array<Finding[] | undefined> = [];
    const unread: string[] = [];
    for (const r of reports) {
      const carried = r.findings.some((f) => f.ticket !== undefined);
      const read = batch.tickets.get(r.hostId);
      if (carried) out.push(await ticketsAtFirstSight(q, batch, r.hostId, r.findings));
      else if (read !== undefined) {
        batch.tickets.delete(r.hostId);
        out.push(withFirstTickets(r.findings, read));
      } else {
        unread.push(r.hostId);
        out.push(undefined);
      }
    }
    if (unread.length === 0) return out as Finding[][];
    const known = new Map<string, { key: string; ticket: string | null }[]>(unread.map((id) => [id, []]));
    const rows = await q.rows<{ host_id: string; key: string; ticket: string | null }>(
      `SELECT host_id, key, ticket FROM findings WHERE host_id = ANY($1::text[]) AND resolved_at IS NULL AND ticket IS NOT NULL`,
      [unread],
    );
    for (const t of rows) known.get(t.host_id)?.push(t);
    return out.map((f, i) => f ?? withFirstTickets(reports[i]!.findings, known.get(reports[i]!.hostId)!));
  }

  /** The rules with each finding's own ticket; one pass when they all carry the same (usually none). */
  function evaluateWithTickets(rules: CompiledRules, findings: readonly Finding[], host: HostForAlerts, image: { name: string }, at: Date): EvaluatedFinding[] {
    const first = findings[0]?.ticket;
    if (findings.every((f) => f.ticket === first)) return alerting.evaluate(rules, findings, host, image, at, first);
    return findings.map((f) => alerting.evaluate(rules, [f], host, image, at, f.ticket)[0]!);
  }

  /** Full reports (of distinct hosts): their hosts' scan findings they did not name again are resolved. */
  async function resolveMissing(q: Sql, reports: ReadonlyArray<{ hostId: string; seq: number; now: string }>): Promise<void> {
    if (reports.length === 0) return;
    await q.run(RESOLVE_MISSING, [reports.map((r) => r.hostId), reports.map((r) => r.seq), reports.map((r) => r.now)]);
  }

  /** Event reports with a scope (of distinct hosts): the open findings of their hosts each one settles, in two statements; returns the hosts of those resolved. */
  async function resolveByEvents(q: Sql, reports: ReadonlyArray<{ hostId: string; seq: number; now: string; report: ReturnType<typeof reportForStore> }>): Promise<string[]> {
    if (reports.length === 0) return [];
    const open = await q.rows<{ host_id: string; id: number; kind: string; path: string | null }>(
      `SELECT u.host_id, s.id, s.kind, s.path FROM ${STALE_SCAN_FINDINGS} ORDER BY u.host_id, s.id`,
      [reports.map((r) => r.hostId), reports.map((r) => r.seq), reports.map((r) => r.now)],
    );
    const byHost = new Map<string, { id: number; kind: string; path: string | null }[]>();
    for (const f of open) {
      const list = byHost.get(f.host_id);
      if (list === undefined) byHost.set(f.host_id, [f]);
      else list.push(f);
    }
    const ids: number[] = [];
    const at: string[] = [];
    const hosts: string[] = [];
    for (const r of reports) {
      const resolved = resolvedByEventReport(r.report, byHost.get(r.hostId) ?? []);
      if (resolved.length > 0) hosts.push(r.hostId);
      for (const id of resolved) {
        ids.push(id);
        at.push(r.now);
      }
    }
    if (ids.length > 0) await q.run('UPDATE findings SET resolved_at = u.now FROM unnest($1::bigint[], $2::text[]) AS u(id, now) WHERE findings.id = u.id', [ids, at]);
    return hosts;
  }

  /**
   * The counts of a round's hosts after their writes. Counting (COUNTED) read every open finding
   * of every reporting host, a third of the database's time at 2,100 reports/s; a report that
   * only added findings (an event report's usual change) moves its host's stored count by what it
   * added instead. Counted again: a host the batch holds no count of, one whose report changed
   * or resolved an open finding, and one whose stored count an approval's expiry ran out.
   */
  async function countRound(
    q: Sql,
    batch: Batch,
    hosts: ReadonlyArray<{ hostId: string; now: Date; change: CountChange | undefined; resolved: boolean }>,
  ): Promise<Array<Omit<PgHostCount, 'counts'>>> {
    const out: Array<Omit<PgHostCount, 'counts'> | undefined> = hosts.map((h) => {
      const stored = batch.counted.get(h.hostId);
      if (stored === undefined || h.resolved || h.change?.changed === true) return undefined;
      if (stored.recountAt !== null && stored.recountAt <= h.now.toISOString()) return undefined;
      return { ...countAfterAdding(stored, h.change?.added ?? []), recountAt: stored.recountAt };
    });
    const again = hosts.filter((_, i) => out[i] === undefined);
    const counted = await countHosts(q, again);
    let k = 0;
    const result = out.map((c) => c ?? counted[k++]!);
    hosts.forEach((h, i) => batch.counted.set(h.hostId, result[i]!));
    return result;
  }

  /**
   * Reports of distinct hosts (one round of a batch, see ingestBatch), each step one statement for
   * all of them: a report's writes depend on its own host's rows only, so doing step by step for
   * the round leaves each host as report by report would.
   */
  async function storeReports(q: Sql, batch: Batch, items: readonly ReportItem[]): Promise<IngestResult[]> {
    const { rules } = batch;
    // Config texts become their diffs before anything of the report is written.
    const reports = items.map((i) => reportForStore(i.frame.report));
    const col = <K>(f: (i: ReportItem, n: number) => K): K[] => items.map(f);
    const inserted = await q.rows<{ n: number; inserted: boolean; prev: string | null; stored: string | null }>(INSERT_REPORTS, [
      col((i) => i.agentId),
      col((i) => i.frame.seq),
      col((i) => i.frame.hash),
      col((i) => i.frame.prevHash),
      col((i) => i.frame.kind),
      col((_, n) => reports[n]!.scannedAt),
      col((i) => i.receivedAt.toISOString()),
      col((_, n) => reports[n]!.summary.status),
      col((_, n) => JSON.stringify(reports[n]!.summary.counts)),
      col((_, n) => JSON.stringify(reports[n]!)),
    ]);
    const results: IngestResult[] = new Array(items.length);
    /** The reports that went in, in the round's order. */
    const live: Array<{ item: ReportItem; report: (typeof reports)[number]; n: number; now: string }> = [];
    for (const r of inserted.sort((x, y) => x.n - y.n)) {
      const n = r.n - 1;
      const { agentId, frame, receivedAt } = items[n]!;
      const now = receivedAt.toISOString();
      if (!r.inserted) {
        // The same seq with other content is no replay: the agent's history was reset or rewritten.
        const rewritten = r.stored !== null && r.stored !== frame.hash;
        if (rewritten) {
          await recordChainBreak(q, agentId, frame.seq, `report ${frame.seq} was sent again with other content (${frame.hash}, stored ${r.stored}): the agent's outbox was reset or rewritten`, now, 'replay');
          // No count now (none ever was, for a duplicate): the host's next report counts again.
          batch.counted.delete(agentId);
          await q.run(`UPDATE hosts SET recount_at = '' WHERE id = $1`, [agentId]);
        }
        results[n] = { type: 'report', seq: frame.seq, outcome: 'duplicate', chainBroken: rewritten };
        continue;
      }
      const chainBroken = await checkChain(q, agentId, frame, r.prev, now);
      if (chainBroken) batch.counted.delete(agentId);
      results[n] = { type: 'report', seq: frame.seq, outcome: 'stored', chainBroken };
      live.push({ item: items[n]!, report: reports[n]!, n, now });
    }
    if (live.length === 0) return results;

    for (const { item, report, now } of live) {
      for (const cs of report.changeSets ?? []) {
        await q.run(
          `INSERT INTO change_sets AS t (host_id, id, tool, command, user_name, started_at, ended_at, packages, ticket, first_seen, last_seen)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
           ON CONFLICT (host_id, id) DO UPDATE SET last_seen = excluded.last_seen, packages = excluded.packages, command = coalesce(excluded.command, t.command),
             ticket = coalesce(t.ticket, excluded.ticket)`,
          [item.agentId, cs.id, cs.tool, cs.command ?? null, cs.user ?? null, cs.start ?? null, cs.end ?? null, cs.packages, cs.ticket ?? null, now],
        );
      }
    }
    const hosts: HostForAlerts[] = [];
    for (const { item, report } of live) hosts.push({ id: item.agentId, hostname: report.host.hostname, labels: batch.labels.get(item.agentId) ?? (await alerting.labelsOf(q, item.agentId)) });
    const ticketed = await ticketsOfRound(q, batch, live.map((l) => ({ hostId: l.item.agentId, findings: l.report.findings })));
    const evaluated = live.map((l, i) => evaluateWithTickets(rules, ticketed[i]!, hosts[i]!, l.report.image, l.item.receivedAt));
    const changes = await upsertFindings(q, 'scan', live.map((l, i) => ({ hostId: l.item.agentId, seq: l.item.frame.seq, now: l.now, writes: evaluated[i]!.map(scanWrite) })));
    const full = live.filter((l) => l.item.frame.kind === 'full');
    await resolveMissing(q, full.map((l) => ({ hostId: l.item.agentId, seq: l.item.frame.seq, now: l.now })));
    // A full report may resolve any of its host's findings (a statement returning which took
    // the planner off its plan: 14 s a round): its host is counted again whatever it resolved.
    const resolved = new Set([
      ...full.map((l) => l.item.agentId),
      ...(await resolveByEvents(q, live.filter((l) => l.item.frame.kind !== 'full' && l.report.scope !== undefined).map((l) => ({ hostId: l.item.agentId, seq: l.item.frame.seq, now: l.now, report: l.report })))),
    ]);
    for (const { item, report } of live) {
      if (report.watch !== undefined) await q.run('UPDATE hosts SET watch_state = $1, watch_reason = $2 WHERE id = $3', [report.watch.state, report.watch.reason ?? null, item.agentId]);
    }

    const counts = await countRound(q, batch, live.map((l) => ({ hostId: l.item.agentId, now: l.item.receivedAt, change: changes.get(l.item.agentId), resolved: resolved.has(l.item.agentId) })));
    await updateHostsAfterReport(
      q,
      live.map(({ item, report }, i) => ({
        id: item.agentId,
        hostname: report.host.hostname,
        imageName: report.image.name,
        imageVersion: report.image.version,
        status: counts[i]!.status,
        scannedAt: report.scannedAt,
        score: counts[i]!.score,
        open: counts[i]!.open,
        now: item.receivedAt,
        seq: item.frame.seq,
        outboxDepth: item.frame.outboxDepth ?? null,
        recountAt: counts[i]!.recountAt,
      })),
    );
    for (const [i, { item, report }] of live.entries()) {
      await touchImage(q, report.image.name, report.image.version, item.receivedAt);
      await alerting.alert(q, hosts[i]!, report.image, evaluated[i]!, counts[i]!.status, item.receivedAt, batch.alerts);
      if (report.containers !== undefined && item.frame.kind === 'full') {
        for (const c of report.containers) await storeContainer(q, batch, item.agentId, hosts[i]!, c, item.frame, item.receivedAt);
        await markMissingContainersGone(q, item.agentId, item.frame.seq, item.receivedAt.toISOString());
      }
    }
    return results;
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
    await upsertFindings(q, 'scan', [{ hostId: id, seq: frame.seq, now, writes: evaluated.map(scanWrite) }]);
    await resolveMissing(q, [{ hostId: id, seq: frame.seq, now }]);
    const { status, score, open, recountAt } = await countHost(q, id, receivedAt);
    await updateHostsAfterReport(q, [
      { id, hostname: host.hostname, imageName: image.name, imageVersion: image.version, status, scannedAt: frame.report.scannedAt, score, open, now: receivedAt, seq: frame.seq, outboxDepth: null, recountAt },
    ]);
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

  async function storeHello(q: Sql, batch: Batch, item: IngestItem & { type: 'hello' }): Promise<IngestResult> {
    const now = item.receivedAt.toISOString();
    const { frame } = item;
    // A hello may count its host again (a clone, new labels): the batch's stored count no longer holds.
    batch.counted.delete(item.agentId);
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

  /**
   * The batch in rounds: round k holds each agent's k-th item, so within a round every host is
   * there once and its reports go set-wise (storeReports), while an agent's items still go in
   * their order. Different agents' items never depended on each other's order (they arrive
   * concurrently).
   */
  async function storeRounds(q: Sql, batch: Batch, items: readonly IngestItem[]): Promise<IngestResult[]> {
    const rounds: number[][] = [];
    const seen = new Map<string, number>();
    items.forEach((item, n) => {
      const k = seen.get(item.agentId) ?? 0;
      seen.set(item.agentId, k + 1);
      (rounds[k] ??= []).push(n);
    });
    const results: IngestResult[] = new Array(items.length);
    for (const round of rounds) {
      const reports: number[] = [];
      for (const n of round) {
        const item = items[n]!;
        if (item.type === 'hello') results[n] = await storeHello(q, batch, item);
        else if (item.type === 'heartbeat') results[n] = { type: 'other' };
        else reports.push(n);
      }
      const stored = await storeReports(q, batch, reports.map((n) => items[n] as ReportItem));
      reports.forEach((n, i) => (results[n] = stored[i]!));
    }
    return results;
  }

  return {
    async ingestBatch(items) {
      if (items.length === 0) return [];
      // Heartbeats need no host lock (they touch only host_heartbeats, see liveness.ts). They still
      // go in the batch's transaction: done apart (one statement, no transaction) a batch of
      // heartbeats only returned at once and the writer's next batches were smaller, and at
      // 2,100 reports/s p99 send→ack went from 167-254 ms to 380-431 ms (bench:ingest).
      const beats = items.filter((i): i is IngestItem & { type: 'heartbeat' } => i.type === 'heartbeat');
      try {
        return await db.tx(async (q) => {
          const ids = [...new Set(items.filter((i) => i.type !== 'heartbeat').map((i) => i.agentId))].sort();
          // Heartbeats only (most batches while the fleet is quiet): no host to lock, no rules or
          // alert memories to read: one statement in the transaction instead of five.
          if (ids.length === 0) {
            await storeHeartbeats(q, beats);
            return items.map((): IngestResult => ({ type: 'other' }));
          }
          const locked = await q.rows<{ id: string; labels: string; drift_score: number; open_findings: number; recount_at: string | null }>(
            'SELECT id, labels, drift_score, open_findings, recount_at FROM hosts WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE',
            [ids],
          );
          // After the hosts' locks, in id order as they are: two batches never wait on each other in a cycle.
          await storeHeartbeats(q, beats);
          const reporting = [...new Set(items.filter((i) => i.type === 'report').map((i) => i.agentId))];
          const { rules, alerts, tickets } = await alerting.startBatch(q, ids, reporting);
          const batch: Batch = {
            rules,
            labels: new Map(locked.map((h) => [h.id, JSON.parse(h.labels) as Record<string, string>])),
            alerts,
            tickets: new Map(reporting.map((id) => [id, []])),
            counted: new Map(locked.map((h) => [h.id, { score: h.drift_score, open: h.open_findings, recountAt: h.recount_at }])),
          };
          for (const t of tickets) batch.tickets.get(t.host_id)?.push(t);
          const results = await storeRounds(q, batch, items);
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
