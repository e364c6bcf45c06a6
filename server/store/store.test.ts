// The Store interface itself, on every backend in STORE_BACKENDS: what any backend must do the same
// way (the API and stream suites rely on it). Each test starts from an empty database.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAlertSink } from '../../shared/alerts.js';
import type { Finding } from '../../shared/report.js';
import type { Alert } from '../alerts/alert.js';
import { CLAIM_LEASE_MS } from '../alerts/queue.js';
import { STORE_BACKENDS, fakeHash, reportFrame } from '../../test/helpers/store-backends.js';
import type { FreshStore } from '../../test/helpers/store-backends.js';
import type { Store } from './types.js';

const t0 = new Date('2026-11-29T12:00:00Z');
const at = (minutes: number): Date => new Date(t0.getTime() + minutes * 60_000);
const curl: Finding = { kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: 'curl', after: '7.88' };
const sink = parseAlertSink({ type: 'webhook', id: 'hook', url: 'http://127.0.0.1:9/hook', secret: 'a-webhook-secret-of-16+' }, 'sink');
const alert = (n: number): Alert => ({
  action: 'trigger',
  dedupKey: `test:${n}`,
  host: { id: 'fleet', hostname: 'fleet', labels: {} },
  image: { name: 'web', version: '42' },
  severity: 'high',
  title: `alert ${n}`,
  findings: [],
  counts: { findings: 1, files: 0 },
  at: t0.toISOString(),
});

describe.each(STORE_BACKENDS)('the $name store', (backend) => {
  let db: FreshStore;
  let store: Store;
  beforeEach(async () => {
    db = await backend.fresh();
    store = db.store;
  });
  afterEach(async () => {
    await db.drop();
  });

  async function enrol(hostname: string): Promise<{ agentId: string; token: string }> {
    return (await store.enrollAgent(await store.createEnrollSecret(t0), hostname, t0))!;
  }

  it('enrols an agent with a secret, knows its token until it is revoked, and refuses what it never issued', async () => {
    const secret = await store.createEnrollSecret(t0);
    expect(await store.enrollAgent('qse.0000000000000000.nope', 'a', t0)).toBeNull();
    const a = (await store.enrollAgent(secret, 'a', t0))!;
    expect(await store.authenticateAgent(a.token)).toEqual({ ok: true, agentId: a.agentId });
    expect(await store.authenticateAgent(`${a.token}x`)).toEqual({ ok: false, reason: 'invalid' });
    expect(await store.revokeAgent(a.agentId, at(1))).toBe(true);
    expect(await store.revokeAgent(a.agentId, at(2))).toBe(false);
    expect(await store.authenticateAgent(a.token)).toEqual({ ok: false, reason: 'revoked' });

    const token = await store.createApiToken('auditor', t0);
    expect(await store.authenticateApiToken(token)).toEqual({ role: 'auditor', tokenId: token.split('.')[1], name: null, user: null });
    const named = await store.createApiToken('admin', t0, 'Q3 audit, Jane');
    expect(await store.authenticateApiToken(named)).toEqual({ role: 'admin', tokenId: named.split('.')[1], name: 'Q3 audit, Jane', user: null });
    expect(await store.authenticateApiToken('not a token')).toBeNull();
  });

  it('counts a secret’s uses exactly when agents enrol with it at once, and refuses it revoked, expired or altered', async () => {
    const three = await store.createEnrollSecret(t0, { maxUses: 3 });
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => store.enrollAgent(three, `h${i}`, t0)));
    expect(answers.filter((a) => a !== null)).toHaveLength(3);
    expect((await store.listEnrollSecrets(t0)).find((s) => three.includes(s.id))).toMatchObject({ uses: 3, state: 'used-up' });

    const later = await store.createEnrollSecret(t0, { expiresAt: at(10) });
    expect(await store.enrollAgent(later, 'in-time', at(9))).not.toBeNull();
    expect(await store.enrollAgent(later, 'too-late', at(10))).toBeNull();

    const revoked = await store.createEnrollSecret(t0);
    const [, id, secret] = revoked.split('.');
    expect(await store.enrollAgent(`qse.${id}.${secret!.slice(1)}x`, 'forged', t0)).toBeNull();
    expect(await store.revokeEnrollSecret(id!, at(1))).toBe(true);
    expect(await store.enrollAgent(revoked, 'after-revocation', at(2))).toBeNull();
    expect((await store.listEnrollSecrets(at(2))).find((s) => s.id === id)).toMatchObject({ uses: 0, state: 'revoked' });
  });

  it('answers a storm of token checks asked at once, each by its own token, a revocation counting from its commit', async () => {
    const agents = await Promise.all(Array.from({ length: 20 }, (_, i) => enrol(`storm-${i}`)));
    await store.revokeAgent(agents[7]!.agentId, at(1));
    const asked = Array.from({ length: 1000 }, (_, i) => agents[i % agents.length]!);
    const answers = await Promise.all(asked.map((a, i) => store.authenticateAgent(i % 50 === 3 ? `${a.token}x` : a.token)));
    answers.forEach((answer, i) => {
      const a = asked[i]!;
      if (i % 50 === 3) expect(answer).toEqual({ ok: false, reason: 'invalid' });
      else if (a === agents[7]) expect(answer).toEqual({ ok: false, reason: 'revoked' });
      else expect(answer).toEqual({ ok: true, agentId: a.agentId });
    });
    // Nothing remembered: the check right after a revocation refuses.
    expect((await store.authenticateAgent(agents[3]!.token)).ok).toBe(true);
    await store.revokeAgent(agents[3]!.agentId, at(2));
    expect(await store.authenticateAgent(agents[3]!.token)).toEqual({ ok: false, reason: 'revoked' });
  });

  it('stores a batch in order, acks a replay as a duplicate and notes a broken chain as a finding', async () => {
    const a = await enrol('a');
    const results = await store.ingestBatch([
      { type: 'report', agentId: a.agentId, frame: reportFrame(a.agentId, 1, 'full', [curl], t0), receivedAt: t0 },
      { type: 'report', agentId: a.agentId, frame: reportFrame(a.agentId, 2, 'event', [], at(1)), receivedAt: at(1) },
      { type: 'report', agentId: a.agentId, frame: reportFrame(a.agentId, 1, 'full', [curl], t0), receivedAt: at(1) },
      { type: 'heartbeat', agentId: a.agentId, outboxDepth: 3, receivedAt: at(1) },
      { type: 'report', agentId: a.agentId, frame: reportFrame(a.agentId, 3, 'event', [], at(2), fakeHash(99)), receivedAt: at(2) },
    ]);
    expect(results).toEqual([
      { type: 'report', seq: 1, outcome: 'stored', chainBroken: false },
      { type: 'report', seq: 2, outcome: 'stored', chainBroken: false },
      { type: 'report', seq: 1, outcome: 'duplicate', chainBroken: false },
      { type: 'other' },
      { type: 'report', seq: 3, outcome: 'stored', chainBroken: true },
    ]);
    expect((await store.listReports(a.agentId)).map((r) => [r.seq, r.hash])).toEqual([[1, fakeHash(1)], [2, fakeHash(2)], [3, fakeHash(3)]]);
    const open = (await store.listFindings(a.agentId, { state: 'open' }, at(2)))!;
    expect(open.map((f) => f.kind).sort()).toEqual(['package-added', 'report-chain-broken']);
    expect(await store.getHost(a.agentId, at(2))).toMatchObject({ status: 'pet', lastSeq: 3, outboxDepth: 3 });
  });

  it('keeps a host\'s hostname, image and status as its last report said, whether they changed or not', async () => {
    const a = await enrol('a');
    const renamed = reportFrame(a.agentId, 3, 'event', [], at(2));
    renamed.report.host.hostname = 'a-renamed';
    renamed.report.image = { name: 'web', version: '43' };
    const clean = reportFrame(a.agentId, 4, 'full', [], at(3));
    clean.report.host.hostname = 'a-renamed';
    clean.report.image = { name: 'web', version: '43' };
    const row = async (when: Date): Promise<unknown> => store.getHost(a.agentId, when);
    await store.ingestBatch([
      { type: 'report', agentId: a.agentId, frame: reportFrame(a.agentId, 1, 'full', [curl], t0), receivedAt: t0 },
      { type: 'report', agentId: a.agentId, frame: reportFrame(a.agentId, 2, 'event', [], at(1)), receivedAt: at(1) },
    ]);
    expect(await row(at(1))).toMatchObject({ hostname: `host-${a.agentId.slice(0, 4)}`, image: { name: 'web', version: '42' }, status: 'pet', lastSeq: 2 });
    await store.ingestBatch([{ type: 'report', agentId: a.agentId, frame: renamed, receivedAt: at(2) }]);
    expect(await row(at(2))).toMatchObject({ hostname: 'a-renamed', image: { name: 'web', version: '43' }, status: 'pet', lastSeq: 3 });
    await store.ingestBatch([{ type: 'report', agentId: a.agentId, frame: clean, receivedAt: at(3) }]);
    expect(await row(at(3))).toMatchObject({ hostname: 'a-renamed', image: { name: 'web', version: '43' }, status: 'cattle', lastSeq: 4, openFindings: 0 });
    expect((await store.listHosts({ status: 'cattle' }, at(3))).map((h) => h.hostname)).toEqual(['a-renamed']);
  });

  it('keeps a host\'s stored count as counting its findings would, through new, changed, resolved, approved, expired, reopened and re-baselined findings', async () => {
    const a = await enrol('a');
    const actor = { id: 't', role: 'analyst' as const };
    const ssh: Finding = { kind: 'package-added', severity: 'medium', ecosystem: 'dpkg', name: 'ssh', after: '9.2' };
    const passwd: Finding = { kind: 'file-modified', severity: 'medium', path: '/etc/passwd', before: fakeHash(5), after: fakeHash(6) };
    const nc: Finding = { kind: 'package-added', severity: 'low', ecosystem: 'dpkg', name: 'nc', after: '1.2' };
    let seq = 0;
    const report = (kind: 'full' | 'event', findings: Finding[], when: Date) => ({ type: 'report' as const, agentId: a.agentId, frame: reportFrame(a.agentId, ++seq, kind, findings, when), receivedAt: when });
    const stored = async (when: Date): Promise<unknown> => {
      const h = (await store.getHost(a.agentId, when))!;
      return { status: h.status, open: h.openFindings, score: h.driftScore };
    };
    const idOf = async (name: string): Promise<number> => (await store.listFindings(a.agentId, { state: 'open' }, at(0)))!.find((f) => f.name === name || f.path === name)!.id;
    await store.ingestBatch([report('full', [curl, passwd], t0)]);
    expect(await stored(t0)).toEqual({ status: 'pet', open: 2, score: 13 });
    // Two reports of the host in one batch: a new finding, then one whose severity changed.
    await store.ingestBatch([report('event', [ssh], at(1)), report('event', [{ ...curl, severity: 'critical' }], at(1))]);
    expect(await stored(at(1))).toEqual({ status: 'pet', open: 3, score: 106 });
    await store.triage.approve({ hostId: a.agentId, findingIds: [await idOf('ssh')], reason: 'r', expiresAt: at(10).toISOString(), actor, now: at(2) });
    await store.ingestBatch([report('event', [], at(5))]);
    expect(await stored(at(5))).toEqual({ status: 'pet', open: 2, score: 103 });
    // The approval ran out before this report; no schedule expired it yet.
    await store.ingestBatch([report('event', [], at(11))]);
    expect(await stored(at(11))).toEqual({ status: 'pet', open: 3, score: 106 });
    // A full report without passwd resolves it; curl approved for good.
    await store.triage.approve({ hostId: a.agentId, findingIds: [await idOf('curl')], reason: 'r', actor, now: at(11) });
    await store.ingestBatch([report('full', [{ ...curl, severity: 'critical' }, ssh], at(12))]);
    expect(await stored(at(12))).toEqual({ status: 'pet', open: 1, score: 3 });
    await store.triage.rebaseline({ hostId: a.agentId, reason: 'r', actor, now: at(13) });
    expect(await stored(at(13))).toEqual({ status: 'cattle', open: 0, score: 0 });
    await store.ingestBatch([report('event', [nc], at(14))]);
    expect(await stored(at(14))).toEqual({ status: 'pet', open: 1, score: 1 });
    await store.triage.reopen({ hostId: a.agentId, findingId: await idOf('curl'), reason: 'r', actor, now: at(15) });
    await store.ingestBatch([report('event', [], at(16))]);
    expect(await stored(at(16))).toEqual({ status: 'pet', open: 2, score: 101 });
  });

  it('writes several agents\' fresh reports, replays and rewritten replays in one batch as one by one: a replay adds nothing, a rewrite breaks the chain', async () => {
    const [a, b, c] = [await enrol('a'), await enrol('b'), await enrol('c')];
    const passwd: Finding = { kind: 'file-modified', severity: 'medium', path: '/etc/passwd', before: fakeHash(5), after: fakeHash(6) };
    const nc: Finding = { kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: 'netcat', after: '1.2' };
    await store.ingestBatch([{ type: 'report', agentId: c.agentId, frame: reportFrame(c.agentId, 1, 'full', [curl], t0), receivedAt: t0 }]);
    const report = (agentId: string, seq: number, kind: 'full' | 'event', findings: Finding[], minutes: number) =>
      ({ type: 'report', agentId, frame: reportFrame(agentId, seq, kind, findings, at(minutes)), receivedAt: at(minutes) }) as const;
    const results = await store.ingestBatch([
      report(a.agentId, 1, 'full', [curl, passwd], 1),
      report(b.agentId, 1, 'full', [curl], 1),
      report(c.agentId, 1, 'full', [curl], 1),
      report(a.agentId, 1, 'full', [curl, passwd], 1),
      report(b.agentId, 2, 'event', [nc], 2),
      report(c.agentId, 2, 'event', [curl], 2),
      report(a.agentId, 2, 'full', [curl], 2),
      { ...report(b.agentId, 1, 'full', [nc], 2), frame: { ...reportFrame(b.agentId, 1, 'full', [nc], at(2)), hash: fakeHash(77) } },
      { type: 'heartbeat', agentId: b.agentId, outboxDepth: 5, receivedAt: at(2) },
    ]);
    const stored = (seq: number, chainBroken = false) => ({ type: 'report', seq, outcome: 'stored', chainBroken });
    const duplicate = (seq: number, chainBroken = false) => ({ type: 'report', seq, outcome: 'duplicate', chainBroken });
    expect(results).toEqual([stored(1), stored(1), duplicate(1), duplicate(1), stored(2), stored(2), stored(2), duplicate(1, true), { type: 'other' }]);
    for (const h of [a, b, c]) expect((await store.listReports(h.agentId)).map((r) => [r.seq, r.hash])).toEqual([[1, fakeHash(1)], [2, fakeHash(2)]]);
    const findings = async (agentId: string, state: 'open' | 'resolved') => (await store.listFindings(agentId, { state }, at(3)))!.map((f) => f.kind).sort();
    // a's second full report no longer names /etc/passwd; the replay of its first did not bring it back.
    expect(await findings(a.agentId, 'open')).toEqual(['package-added']);
    expect(await findings(a.agentId, 'resolved')).toEqual(['file-modified']);
    expect(await findings(b.agentId, 'open')).toEqual(['package-added', 'package-added', 'report-chain-broken']);
    // c's replayed first report and its event naming curl again leave one open row.
    expect(await findings(c.agentId, 'open')).toEqual(['package-added']);
    expect(await store.getHost(a.agentId, at(3))).toMatchObject({ status: 'pet', lastSeq: 2, openFindings: 1 });
    expect(await store.getHost(b.agentId, at(3))).toMatchObject({ status: 'pet', lastSeq: 2, outboxDepth: 5, openFindings: 3 });
    expect(await store.getHost(c.agentId, at(3))).toMatchObject({ status: 'pet', lastSeq: 2, openFindings: 1 });
  });

  it('writes a batch whole or not at all: one item that cannot be stored rejects it and nothing of it stays', async () => {
    const a = await enrol('a');
    const batch = store.ingestBatch([
      { type: 'report', agentId: a.agentId, frame: reportFrame(a.agentId, 1, 'full', [curl], t0), receivedAt: t0 },
      { type: 'report', agentId: 'qsa-never-enrolled', frame: reportFrame('qsa-never-enrolled', 1, 'full', [], t0), receivedAt: t0 },
    ]);
    await expect(batch).rejects.toThrow();
    expect(await store.listReports(a.agentId)).toEqual([]);
    // The next batch is taken as if the failed one never happened.
    const again = await store.ingestBatch([{ type: 'report', agentId: a.agentId, frame: reportFrame(a.agentId, 1, 'full', [curl], t0), receivedAt: t0 }]);
    expect(again).toEqual([{ type: 'report', seq: 1, outcome: 'stored', chainBroken: false }]);
  });

  it('answers a refused act with a rejection carrying its error code, not a throw', async () => {
    const approving = store.triage.approve({ hostId: 'qsa-unknown', findingIds: [1], reason: 'r', actor: { id: 't', role: 'analyst' }, now: t0 });
    expect(approving).toBeInstanceOf(Promise);
    await expect(approving).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(store.baselines.receiveObservation({ hostId: 'qsa-unknown', version: 1, baseline: null, observation: {} as never, expected: {} as never, now: t0 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('keeps sinks by id, replacing one saved again', async () => {
    expect(await store.saveSink(sink, t0)).toBe(false);
    expect(await store.saveSink({ ...sink, minSeverity: 'critical' }, at(1))).toBe(true);
    expect(await store.listSinks()).toEqual([{ ...sink, minSeverity: 'critical' }]);
    expect(await store.deleteSink('hook')).toBe(true);
    expect(await store.deleteSink('hook')).toBe(false);
    expect(await store.listSinks()).toEqual([]);
  });

  it('hands each due delivery to one claimer, keeps every attempt, retries when told, and takes back a claim whose loop died', async () => {
    await store.saveSink(sink, t0);
    const now = t0.getTime();
    await store.alertQueue.enqueue(
      [1, 2, 3].map((n) => ({ id: `d${n}`, sinkId: 'hook', alert: alert(n), notBefore: n === 3 ? now + 60_000 : now })),
      t0,
    );
    const [first, second] = await Promise.all([store.alertQueue.claimDue(now, 10), store.alertQueue.claimDue(now, 10)]);
    expect([...first!, ...second!].map((d) => d.id).sort()).toEqual(['d1', 'd2']);

    const outcome = { ok: false as const, retryable: true, error: 'HTTP 503', status: 503 };
    await store.alertQueue.record({ deliveryId: 'd1', sinkId: 'hook', attempt: 1, at: now, outcome: { ok: true, status: 200 }, result: 'delivered' });
    await store.alertQueue.record({ deliveryId: 'd2', sinkId: 'hook', attempt: 1, at: now, outcome, result: 'retry', nextAttemptAt: now + 30_000 });
    expect(await store.alertQueue.claimDue(now + 10_000, 10)).toEqual([]);
    const retried = await store.alertQueue.claimDue(now + 60_000, 10);
    expect(retried.map((d) => [d.id, d.attempts])).toEqual([['d2', 1], ['d3', 0]]);
    // Claimed and never recorded (the loop died mid-send): back once the lease ran out.
    expect(await store.alertQueue.claimDue(now + 60_000 + CLAIM_LEASE_MS - 1, 10)).toEqual([]);
    expect((await store.alertQueue.claimDue(now + 60_000 + CLAIM_LEASE_MS, 10)).map((d) => d.id)).toEqual(['d2', 'd3']);

    const rows = await store.alertQueue.listDeliveries();
    expect(rows.map((r) => [r.id, r.state, r.attempts])).toEqual([['d1', 'delivered', 1], ['d2', 'claimed', 1], ['d3', 'claimed', 0]]);
    expect(rows[0]).toMatchObject({ sinkId: 'hook', dedupKey: 'test:1', createdAt: t0.toISOString(), alert: alert(1) });
    expect((await store.alertQueue.listAttempts('d2')).map((a) => [a.attempt, a.ok, a.status, a.result, a.nextAttemptAt])).toEqual([[1, false, 503, 'retry', now + 30_000]]);
    expect(await store.alertQueue.listAttempts()).toHaveLength(2);
  });

  it('prunes reports and resolved findings past the retention, keeping each host its last report', async () => {
    const a = await enrol('a');
    for (let seq = 1; seq <= 3; seq++) {
      await store.ingestBatch([{ type: 'report', agentId: a.agentId, frame: reportFrame(a.agentId, seq, 'full', seq === 1 ? [curl] : [], at(seq)), receivedAt: at(seq) }]);
    }
    expect(await store.maintenance.prune(at(0))).toEqual({ reports: 0, findings: 0, alerts: 0 });
    // The curl finding's alert, recorded `planned` (no sink is configured), is settled and old too.
    expect(await store.maintenance.prune(at(10))).toEqual({ reports: 2, findings: 1, alerts: 1 });
    expect((await store.listReports(a.agentId)).map((r) => r.seq)).toEqual([3]);
    expect(await store.listFindings(a.agentId, { state: 'resolved' }, at(10))).toEqual([]);
  });

  it('prunes settled alert deliveries and their attempts past the retention, keeping a delivered trigger until its resolve is queued', async () => {
    await store.saveSink(sink, t0);
    const now = t0.getTime();
    const resolve = (n: number): Alert => ({ ...alert(n), action: 'resolve' });
    await store.alertQueue.enqueue(
      [
        { id: 'paged-and-resolved', sinkId: 'hook', alert: alert(1), notBefore: now },
        { id: 'its-resolve', sinkId: 'hook', alert: resolve(1), notBefore: now },
        { id: 'paged-still-open', sinkId: 'hook', alert: alert(2), notBefore: now },
        { id: 'gave-up', sinkId: 'hook', alert: alert(3), notBefore: now },
        { id: 'still-retrying', sinkId: 'hook', alert: alert(4), notBefore: now },
      ],
      t0,
    );
    const ok = { ok: true as const, status: 200 };
    const failed = { ok: false as const, retryable: true, error: 'HTTP 503', status: 503 };
    for (const id of ['paged-and-resolved', 'its-resolve', 'paged-still-open']) await store.alertQueue.record({ deliveryId: id, sinkId: 'hook', attempt: 1, at: now, outcome: ok, result: 'delivered' });
    await store.alertQueue.record({ deliveryId: 'gave-up', sinkId: 'hook', attempt: 1, at: now, outcome: failed, result: 'gave-up' });
    await store.alertQueue.record({ deliveryId: 'still-retrying', sinkId: 'hook', attempt: 1, at: now, outcome: failed, result: 'retry', nextAttemptAt: now + 30_000 });
    // Newer than the cutoff: stays whatever its state.
    await store.alertQueue.enqueue([{ id: 'recent', sinkId: 'hook', alert: alert(5), notBefore: now }], at(20));
    await store.alertQueue.record({ deliveryId: 'recent', sinkId: 'hook', attempt: 1, at: now, outcome: failed, result: 'gave-up' });

    expect(await store.maintenance.prune(t0)).toEqual({ reports: 0, findings: 0, alerts: 0 });
    expect(await store.maintenance.prune(at(10))).toEqual({ reports: 0, findings: 0, alerts: 3 });
    expect((await store.alertQueue.listDeliveries()).map((d) => [d.id, d.state])).toEqual([
      ['paged-still-open', 'delivered'],
      ['still-retrying', 'pending'],
      ['recent', 'gave-up'],
    ]);
    expect((await store.alertQueue.listAttempts()).map((a) => a.deliveryId).sort()).toEqual(['paged-still-open', 'recent', 'still-retrying']);
  });
});
