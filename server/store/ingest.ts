import type { Database as Db } from 'better-sqlite3';
import type { Finding } from '../../shared/report.js';
import type { ReportFrame } from '../../shared/protocol.js';
import { findingKey } from '../classify.js';
import { identityOf } from '../alerts/policy.js';
import { BY_REPORT, createHostStatus } from './host-status.js';
import type { EvaluatedFinding } from '../rules.js';
import { effectiveLabels } from '../../shared/labels.js';
import { createRedecide, storedVerdict } from './redecide.js';
import { createAlerting } from './alerting.js';
import type { Alerting } from './alerting.js';
import type { Synchronous } from './async-adapter.js';
import type { Ingest, IngestItem, IngestResult } from './types.js';
import { CLONE_FINDING_KIND, createMachineIdentity } from './identity.js';
import type { Severity } from '../../shared/findings.js';
import { createContainerRows } from './containers.js';
import type { ContainerReport } from '../../shared/report.js';
import { reportForStore } from './config-diffs.js';

/** The host row's columns that are in indexes: written only when they change. */
interface HostIndexed {
  status: string;
  hostname: string;
  image_name: string | null;
  image_version: string | null;
}

/** Findings the server itself raises about a host (not the agent's scan). */
export const CHAIN_FINDING_KIND = 'report-chain-broken';

/**
 * The open scan findings (older than this report) an event report resolves: those in its scope
 * that it no longer shows. Pure.
 */
export function resolvedByEventReport(report: ReportFrame['report'], open: ReadonlyArray<{ id: number; kind: string; path: string | null }>): number[] {
  if (report.scope === undefined) return [];
  const { paths, subtrees, packages } = report.scope;
  const inScope = (row: { kind: string; path: string | null }): boolean =>
    row.kind.startsWith('package-')
      ? packages
      : row.path !== null && (paths.includes(row.path) || subtrees.some((t) => row.path === t || row.path!.startsWith(t.endsWith('/') ? t : `${t}/`)));
  // A path the report now lists under a package is owned: its loose finding (seen while the
  // package manager was still writing, before its database said whose it is) is gone too.
  const owned = new Set<string>();
  if (packages) for (const f of report.findings) if (f.kind.startsWith('package-')) for (const c of f.changes ?? []) if (c.path !== undefined) owned.add(c.path);
  return open.filter((row) => inScope(row) || (!row.kind.startsWith('package-') && row.path !== null && owned.has(row.path))).map((row) => row.id);
}

/**
 * Each finding with the ticket it carried when the server first saw it, given the host's open
 * findings (`known`: all of them when the report carries a ticket, else the ticketed ones). Pure.
 */
export function withFirstTickets(findings: readonly Finding[], known: ReadonlyArray<{ key: string; ticket: string | null }>): Finding[] {
  const carried = findings.some((f) => f.ticket !== undefined);
  const byKey = new Map(known.map((r) => [r.key, r.ticket]));
  if (!carried && byKey.size === 0) return findings as Finding[];
  return findings.map((f) => {
    const key = findingKey(f);
    const ticket = carried && !byKey.has(key) ? f.ticket : (byKey.get(key) ?? undefined);
    if (ticket === f.ticket) return f;
    const { ticket: _dropped, ...rest } = f;
    return ticket === undefined ? rest : { ...rest, ticket };
  });
}

/**
 * Stores what agents send. Each batch is one transaction (the caller acks only after it
 * returns), and every statement is prepared once here.
 */
export function createIngest(db: Db, alerting: Alerting = createAlerting(db)): Synchronous<Ingest> {
  const insertReport = db.prepare(
    `INSERT INTO reports (host_id, seq, hash, prev_hash, kind, scanned_at, received_at, status, counts, body)
     VALUES (@hostId, @seq, @hash, @prevHash, @kind, @scannedAt, @receivedAt, @status, @counts, @body)
     ON CONFLICT (host_id, seq) DO NOTHING`,
  );
  const getReportHash = db.prepare<[string, number], { hash: string }>('SELECT hash FROM reports WHERE host_id = ? AND seq = ?');
  const upsertFinding = db.prepare(
    `INSERT INTO findings (host_id, key, source, kind, severity, ecosystem, name, path, detail, first_seen, last_seen, first_seq, last_seq, change_set, decision, waived, identity, ticket)
     VALUES (@hostId, @key, @source, @kind, @severity, @ecosystem, @name, @path, @detail, @seen, @seen, @seq, @seq, @changeSet, @decision, @waived, @identity, @ticket)
     ON CONFLICT (host_id, key) WHERE resolved_at IS NULL
     DO UPDATE SET severity = excluded.severity, detail = excluded.detail, last_seen = excluded.last_seen, last_seq = excluded.last_seq,
       change_set = excluded.change_set, decision = excluded.decision, waived = excluded.waived, identity = excluded.identity`,
  );
  // After a full scan every open scan finding it did not repeat is gone from the host.
  const resolveMissing = db.prepare(
    `UPDATE findings SET resolved_at = ? WHERE host_id = ? AND resolved_at IS NULL AND source = 'scan' AND last_seq < ?`,
  );
  // An event report speaks for its scope only: what it no longer shows there is gone.
  const openScanFindings = db.prepare<[string, number], { id: number; kind: string; path: string | null }>(
    `SELECT id, kind, path FROM findings WHERE host_id = ? AND resolved_at IS NULL AND source = 'scan' AND last_seq < ?`,
  );
  const resolveOne = db.prepare('UPDATE findings SET resolved_at = ? WHERE id = ?');
  // The package manager runs a report names: what the API shows as the change's cause.
  const upsertChangeSet = db.prepare(
    `INSERT INTO change_sets (host_id, id, tool, command, user_name, started_at, ended_at, packages, ticket, first_seen, last_seen)
     VALUES (@hostId, @id, @tool, @command, @user, @start, @end, @packages, @ticket, @now, @now)
     ON CONFLICT (host_id, id) DO UPDATE SET last_seen = excluded.last_seen, packages = excluded.packages, command = coalesce(excluded.command, command),
       ticket = coalesce(ticket, excluded.ticket)`,
  );
  // The ticket of a change is the one it carried when first seen: what is open keeps its own.
  const openTickets = db.prepare<[string], { key: string; ticket: string | null }>(
    `SELECT key, ticket FROM findings WHERE host_id = ? AND resolved_at IS NULL AND source = 'scan'`,
  );
  // Its own partial index, named: without statistics the planner takes findings_by_host (two
  // equal columns) and reads every open finding of the host to find the few with a ticket.
  const openTicketed = db.prepare<[string], { key: string; ticket: string | null }>(
    `SELECT key, ticket FROM findings INDEXED BY findings_open_ticketed WHERE host_id = ? AND resolved_at IS NULL AND ticket IS NOT NULL`,
  );
  // What makes a pet: open, not waived by a rule, not approved.
  const hostStatus = createHostStatus(db);
  const updateWatch = db.prepare('UPDATE hosts SET watch_state = ?, watch_reason = ? WHERE id = ?');
  // A report's host row in two parts: SQLite rewrites the entries of every index on a column the
  // SET names even when its value stays the same, and hostname, image and status are in four
  // indexes (the fleet's and the console's). They rarely change, so they are written only when
  // they do; the rest of the row changes with every report and is in no index.
  const updateHostCounts = db.prepare(
    `UPDATE hosts SET pet_since = CASE WHEN @status = 'pet' THEN coalesce(pet_since, @scannedAt) ELSE NULL END, drift_score = @score, open_findings = @open,
       last_seen = @now, last_report_at = @now, last_seq = max(last_seq, @seq), outbox_depth = coalesce(@outboxDepth, outbox_depth)
     WHERE id = @hostId`,
  );
  const hostIndexed = db.prepare<[string], HostIndexed>('SELECT status, hostname, image_name, image_version FROM hosts WHERE id = ?');
  // A report reads its host's row once: the labels the rules and alerts see, and the indexed
  // columns as they were before it (nothing the report writes first changes them).
  const hostBefore = db.prepare<[string], HostIndexed & { labels: string }>('SELECT labels, status, hostname, image_name, image_version FROM hosts WHERE id = ?');
  const updateHostIndexed = db.prepare('UPDATE hosts SET hostname = @hostname, image_name = @imageName, image_version = @imageVersion, status = @status WHERE id = @hostId');
  const updateHostHello = db.prepare(
    `UPDATE hosts SET hostname = @hostname, os = @os, agent_version = @agentVersion, last_seen = @now, outbox_depth = @outboxDepth,
       image_name = coalesce(@imageName, image_name), image_version = coalesce(@imageVersion, image_version), baseline_version = @baseline
     WHERE id = @hostId`,
  );
  const agentLabels = db.prepare<[string], { labels_agent: string; labels_api: string; hostname: string; image_name: string | null; image_version: string | null }>(
    'SELECT labels_agent, labels_api, hostname, image_name, image_version FROM hosts WHERE id = ?',
  );
  const putAgentLabels = db.prepare('UPDATE hosts SET labels_agent = ?, labels = ? WHERE id = ?');
  const redecide = createRedecide(db, alerting);
  const machines = createMachineIdentity(db);
  const updateHostHeartbeat = db.prepare('UPDATE hosts SET last_seen = ?, outbox_depth = ? WHERE id = ?');
  const upsertImage = db.prepare(
    `INSERT INTO images (name, version, source, first_seen, last_seen) VALUES (?, ?, 'announced', ?, ?)
     ON CONFLICT (name, version) DO UPDATE SET last_seen = excluded.last_seen`,
  );

  const containerRows = createContainerRows(db);

  // An image's last_seen to the minute is plenty; writing it on every report is not.
  const imageTouched = new Map<string, number>();
  function touchImage(name: string, version: string, at: Date): void {
    const key = `${name}\u0000${version}`;
    if ((imageTouched.get(key) ?? -Infinity) > at.getTime() - 60_000) return;
    imageTouched.set(key, at.getTime());
    upsertImage.run(name, version, at.toISOString(), at.toISOString());
  }

  function storeReport(agentId: string, frame: ReportFrame, receivedAt: Date): IngestResult {
    const now = receivedAt.toISOString();
    // Config texts become their diffs before anything of the report is written.
    const report = reportForStore(frame.report);
    const inserted = insertReport.run({
      hostId: agentId,
      seq: frame.seq,
      hash: frame.hash,
      prevHash: frame.prevHash,
      kind: frame.kind,
      scannedAt: report.scannedAt,
      receivedAt: now,
      status: report.summary.status,
      counts: JSON.stringify(report.summary.counts),
      body: JSON.stringify(report),
    });
    // (agent, seq) is unique: a replay after a lost ack changes nothing and is acked again.
    if (inserted.changes === 0) {
      // The same seq with other content is no replay: the agent's history was reset or rewritten.
      const stored = getReportHash.get(agentId, frame.seq);
      const rewritten = stored !== undefined && stored.hash !== frame.hash;
      if (rewritten) recordChainBreak(agentId, frame.seq, `report ${frame.seq} was sent again with other content (${frame.hash}, stored ${stored.hash}): the agent's outbox was reset or rewritten`, now, 'replay');
      return { type: 'report', seq: frame.seq, outcome: 'duplicate', chainBroken: rewritten };
    }

    const chainBroken = checkChain(agentId, frame, now);
    for (const cs of report.changeSets ?? []) {
      upsertChangeSet.run({ hostId: agentId, id: cs.id, tool: cs.tool, command: cs.command ?? null, user: cs.user ?? null, start: cs.start ?? null, end: cs.end ?? null, packages: cs.packages, ticket: cs.ticket ?? null, now });
    }
    const was = hostBefore.get(agentId);
    const host = { id: agentId, hostname: report.host.hostname, labels: was === undefined ? {} : (JSON.parse(was.labels) as Record<string, string>) };
    const findings = ticketsAtFirstSight(agentId, report.findings);
    const evaluated = evaluateWithTickets(findings, host, report.image, receivedAt);
    for (const e of evaluated) saveFinding(agentId, 'scan', e, frame.seq, now);
    if (frame.kind === 'full') resolveMissing.run(now, agentId, frame.seq);
    else if (report.scope !== undefined) {
      for (const id of resolvedByEventReport(report, openScanFindings.all(agentId, frame.seq))) resolveOne.run(now, id);
    }
    if (report.watch !== undefined) updateWatch.run(report.watch.state, report.watch.reason ?? null, agentId);

    const { status, score, open } = hostStatus.count(agentId, receivedAt);
    const before = writeHostAfterReport({
      hostId: agentId,
      hostname: report.host.hostname,
      imageName: report.image.name,
      imageVersion: report.image.version,
      status,
      scannedAt: report.scannedAt,
      score,
      open,
      now,
      seq: frame.seq,
      outboxDepth: frame.outboxDepth ?? null,
    }, was);
    hostStatus.note(agentId, before, status, receivedAt, BY_REPORT);
    touchImage(report.image.name, report.image.version, receivedAt);
    alerting.alert(host, report.image, evaluated, status, receivedAt);
    if (report.containers !== undefined && frame.kind === 'full') {
      for (const c of report.containers) storeContainer(agentId, host, c, frame, receivedAt);
      containerRows.markMissingGone(agentId, frame.seq, now);
    }
    return { type: 'report', seq: frame.seq, outcome: 'stored', chainBroken };
  }

  /** Writes a host's row after its report, given its indexed columns before; returns its status before (null: no such host). */
  function writeHostAfterReport(
    row: { hostId: string; hostname: string; imageName: string; imageVersion: string; status: string; scannedAt: string; score: number; open: number; now: string; seq: number; outboxDepth: number | null },
    was: HostIndexed | undefined = hostIndexed.get(row.hostId),
  ): string | null {
    if (was === undefined) return null;
    updateHostCounts.run(row);
    if (was.status !== row.status || was.hostname !== row.hostname || was.image_name !== row.imageName || was.image_version !== row.imageVersion) updateHostIndexed.run(row);
    return was.status;
  }

  /**
   * One container of a full report, as a child of its host: its findings stored, resolved and
   * counted under its own host id, alerting and rules as for any host (with its host's labels).
   * A gone container keeps what it last showed; an unreadable one (`unknown`) changes nothing.
   */
  function storeContainer(agentId: string, parent: { hostname: string; labels: Record<string, string> }, c: ContainerReport, frame: ReportFrame, receivedAt: Date): void {
    const now = receivedAt.toISOString();
    const id = containerRows.upsert(agentId, parent.hostname, c, frame.seq, now);
    if (c.state === 'gone' || c.state === 'unknown') return;
    const host = { id, hostname: `${parent.hostname}/${c.name ?? c.id.slice(0, 12)}`, labels: parent.labels };
    const image = { name: c.image.ref ?? c.image.id ?? 'unknown', version: c.image.id ?? 'unknown' };
    const evaluated = evaluateWithTickets(ticketsAtFirstSight(id, c.findings), host, image, receivedAt);
    for (const e of evaluated) saveFinding(id, 'scan', e, frame.seq, now);
    resolveMissing.run(now, id, frame.seq);
    const { status, score, open } = hostStatus.count(id, receivedAt);
    const before = writeHostAfterReport({ hostId: id, hostname: host.hostname, imageName: image.name, imageVersion: image.version, status, scannedAt: frame.report.scannedAt, score, open, now, seq: frame.seq, outboxDepth: null });
    hostStatus.note(id, before, status, receivedAt, BY_REPORT);
    alerting.alert(host, image, evaluated, status, receivedAt);
  }

  /**
   * Each finding with the ticket it carried when the server first saw it: a change already open
   * keeps its own (none, if it came before the ticket was declared), a new one takes the report's.
   * Most reports carry no ticket and their host has no ticketed finding open: one indexed look-up.
   */
  function ticketsAtFirstSight(agentId: string, findings: readonly Finding[]): Finding[] {
    const carried = findings.some((f) => f.ticket !== undefined);
    return withFirstTickets(findings, (carried ? openTickets : openTicketed).all(agentId));
  }

  /** The rules with each finding's own ticket; one pass when they all carry the same (usually none). */
  function evaluateWithTickets(findings: readonly Finding[], host: Parameters<Alerting['evaluate']>[1], image: { name: string }, at: Date): EvaluatedFinding[] {
    const first = findings[0]?.ticket;
    if (findings.every((f) => f.ticket === first)) return alerting.evaluate(findings, host, image, at, first);
    return findings.map((f) => alerting.evaluate([f], host, image, at, f.ticket)[0]!);
  }

  /**
   * The report must name the hash of this agent's report seq-1. A missing predecessor (a gap) or
   * another hash (a rewritten history) is itself a finding: someone or something lost reports.
   */
  function checkChain(agentId: string, frame: ReportFrame, now: string): boolean {
    let problem: string | null = null;
    if (frame.seq === 1) {
      if (frame.prevHash !== null) problem = 'the first report names a predecessor';
    } else {
      const prev = getReportHash.get(agentId, frame.seq - 1);
      if (prev === undefined) problem = `report ${frame.seq - 1} never arrived`;
      else if (prev.hash !== frame.prevHash) problem = `report ${frame.seq} names predecessor ${frame.prevHash ?? 'none'}, the stored report ${frame.seq - 1} is ${prev.hash}`;
    }
    if (problem === null) return false;
    recordChainBreak(agentId, frame.seq, problem, now, 'link');
    return true;
  }

  function recordChainBreak(agentId: string, seq: number, reason: string, now: string, what: 'link' | 'replay'): void {
    raise(agentId, { key: `${CHAIN_FINDING_KIND}|${what}|${seq}`, kind: CHAIN_FINDING_KIND, severity: 'high', detail: { seq, reason }, seq, now });
  }

  /** A finding of the server's own; seen again, it stays one open row with a new last_seen. */
  function raise(agentId: string, f: { key: string; kind: string; severity: Severity; detail: unknown; seq: number; now: string }): void {
    upsertFinding.run({
      hostId: agentId,
      key: f.key,
      source: 'server',
      kind: f.kind,
      severity: f.severity,
      ecosystem: null,
      name: null,
      path: null,
      detail: JSON.stringify(f.detail),
      seen: f.now,
      seq: f.seq,
      changeSet: null,
      decision: null,
      waived: 0,
      ticket: null,
      identity: f.key,
    });
  }

  /**
   * Critical: while two machines share one identity, either one's clean full report resolves
   * what the other one's drift opened, so the server's view of the host cannot be trusted at
   * all — and a token that turns up on another machine may be a stolen one.
   */
  function recordClone(agentId: string, hello: IngestItem & { type: 'hello' }, clone: { key: string; reason: string }): void {
    const { host } = hello.frame;
    const detail = { reason: clone.reason, hostname: host.hostname, machineId: host.machineId ?? null, bootId: host.bootId ?? null };
    raise(agentId, { key: clone.key, kind: CLONE_FINDING_KIND, severity: 'critical', detail, seq: Math.max(1, hello.frame.lastAckedSeq), now: hello.receivedAt.toISOString() });
    hostStatus.refresh(agentId, hello.receivedAt, { cause: 'hello', actor: null });
  }

  function saveFinding(agentId: string, source: 'scan', e: EvaluatedFinding, seq: number, now: string): void {
    const f: Finding = e.finding;
    const { severity, waived } = storedVerdict(e);
    upsertFinding.run({
      hostId: agentId,
      key: findingKey(f),
      source,
      kind: f.kind,
      severity,
      changeSet: f.changeSet ?? null,
      decision: JSON.stringify(e.decision),
      waived: waived ? 1 : 0,
      identity: identityOf(f),
      ticket: f.ticket ?? null,
      ecosystem: f.ecosystem ?? null,
      name: f.name ?? null,
      path: f.path ?? null,
      detail: JSON.stringify(f),
      seen: now,
      seq,
    });
  }

  /** The agent's own labels changed: the rules may decide its open findings otherwise now. */
  function declareLabels(agentId: string, declared: Record<string, string>, at: Date): void {
    const row = agentLabels.get(agentId);
    if (row === undefined || row.labels_agent === JSON.stringify(declared)) return;
    const labels = effectiveLabels(declared, JSON.parse(row.labels_api) as Record<string, string>);
    putAgentLabels.run(JSON.stringify(declared), JSON.stringify(labels), agentId);
    if (redecide(agentId, at).size === 0) return;
    const { before, after } = hostStatus.refresh(agentId, at, { cause: 'labels', actor: null });
    if (after === 'cattle' && before !== 'cattle') {
      alerting.alert({ id: agentId, hostname: row.hostname, labels }, { name: row.image_name ?? '', version: row.image_version ?? '' }, [], 'cattle', at);
    }
  }

  const runBatch = db.transaction((items: readonly IngestItem[]): IngestResult[] =>
    items.map((item): IngestResult => {
      const now = item.receivedAt.toISOString();
      switch (item.type) {
        case 'report':
          return storeReport(item.agentId, item.frame, item.receivedAt);
        case 'hello': {
          const { frame } = item;
          // The second machine's hello does not rename the host or speak for its labels.
          const clone = machines.observe(item.agentId, frame);
          if (clone !== null) {
            recordClone(item.agentId, item, clone);
            return { type: 'other' };
          }
          updateHostHello.run({
            hostId: item.agentId,
            hostname: frame.host.hostname,
            os: frame.host.os ?? null,
            agentVersion: frame.host.agentVersion ?? null,
            now,
            outboxDepth: frame.outboxDepth,
            imageName: frame.image?.name ?? null,
            imageVersion: frame.image?.version ?? null,
            baseline: frame.baseline ?? null,
          });
          if (frame.image !== null) touchImage(frame.image.name, frame.image.version, item.receivedAt);
          if (frame.labels !== undefined) declareLabels(item.agentId, frame.labels, item.receivedAt);
          return { type: 'other' };
        }
        case 'heartbeat':
          updateHostHeartbeat.run(now, item.outboxDepth, item.agentId);
          return { type: 'other' };
      }
    }),
  );

  return {
    ingestBatch(items) {
      if (items.length === 0) return [];
      try {
        // IMMEDIATE: the batch reads before it writes; the API's connection writes too (see triage.ts).
        return runBatch.immediate(items);
      } catch (err) {
        // Rolled back: what the cache says was written may not be.
        imageTouched.clear();
        throw err;
      }
    },
  };
}
