// The compliance export's reads, on every backend in STORE_BACKENDS: pages keyed by id that hold
// exactly the period's rows, approvals with who and which baseline version, manifests' digests.
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseRuleSet } from '../../shared/rules.js';
import type { Finding } from '../../shared/report.js';
import { MANIFEST_SCHEMA } from '../../shared/manifest.js';
import type { Manifest } from '../../shared/manifest.js';
import { STORE_BACKENDS, reportFrame } from '../../test/helpers/store-backends.js';
import type { FreshStore } from '../../test/helpers/store-backends.js';
import type { ExportScope, Store } from './types.js';

const t0 = new Date('2026-11-01T00:00:00Z');
const at = (hours: number): Date => new Date(t0.getTime() + hours * 3_600_000);
const file = (path: string): Finding => ({ kind: 'file-added', severity: 'high', path });

describe.each(STORE_BACKENDS)('the $name store: export queries', (backend) => {
  let db: FreshStore;
  let store: Store;
  beforeEach(async () => {
    db = await backend.fresh();
    store = db.store;
  });
  afterEach(async () => {
    await db.drop();
  });

  async function enrol(hostname: string): Promise<string> {
    return (await store.enrollAgent(await store.createEnrollSecret(t0), hostname, t0))!.agentId;
  }
  async function report(hostId: string, seq: number, kind: 'full' | 'event', findings: Finding[], when: Date, watch?: { state: 'ok' | 'degraded'; reason?: string }): Promise<void> {
    const frame = reportFrame(hostId, seq, kind, findings, when);
    if (watch !== undefined) frame.report.watch = watch;
    if (kind === 'event') frame.report.scope = { paths: findings.flatMap((f) => (f.path === undefined ? [] : [f.path])), subtrees: [], packages: false };
    await store.ingestBatch([{ type: 'report', agentId: hostId, frame, receivedAt: when }]);
  }
  async function all<T, C>(page: (after: C | undefined) => Promise<T[]>, key: (row: T) => C): Promise<T[][]> {
    const pages: T[][] = [];
    let after: C | undefined;
    for (;;) {
      const rows = await page(after);
      if (rows.length === 0) return pages;
      pages.push(rows);
      after = key(rows.at(-1)!);
    }
  }

  it('pages the hosts of a scope by id: all, an image, a label, one host', async () => {
    const ids = [await enrol('a'), await enrol('b'), await enrol('c')];
    for (const id of ids) await report(id, 1, 'full', [], at(1));
    const actor = { id: 'tok', role: 'admin' };
    await store.triage.setLabels({ hostId: ids[1]!, labels: { env: 'prod' }, actor, now: at(2) });
    const scoped = async (scope: ExportScope) => (await all((after: string | undefined) => store.exports.pageHosts({ scope, after, limit: 2 }), (h) => h.id)).map((p) => p.map((h) => h.id));
    const sorted = [...ids].sort();
    expect(await scoped({ kind: 'all' })).toEqual([sorted.slice(0, 2), sorted.slice(2)]);
    expect((await scoped({ kind: 'image', name: 'web' })).flat()).toEqual(sorted);
    expect(await scoped({ kind: 'image', name: 'db' })).toEqual([]);
    expect(await scoped({ kind: 'label', key: 'env', value: 'prod' })).toEqual([[ids[1]]]);
    expect(await scoped({ kind: 'host', id: ids[2]! })).toEqual([[ids[2]]]);
    const [h] = await store.exports.pageHosts({ scope: { kind: 'host', id: ids[1]! }, limit: 1 });
    expect(h).toMatchObject({ hostname: 'host-' + ids[1]!.slice(0, 4), image: { name: 'web', version: '42' }, labels: { env: 'prod' }, baselineVersion: null, lastReportAt: at(1).toISOString() });
  });

  it("pages a host's reports of a period with their watch state, and finds the report before it", async () => {
    const id = await enrol('a');
    await report(id, 1, 'full', [], at(0), { state: 'ok' });
    await report(id, 2, 'full', [], at(10), { state: 'degraded', reason: 'inotify watch limit reached' });
    await report(id, 3, 'event', [file('/etc/x')], at(11));
    await report(id, 4, 'full', [], at(20), { state: 'ok' });
    const pages = await all((after: number | undefined) => store.exports.pageReports({ hostId: id, from: at(5), to: at(20), after, limit: 2 }), (r) => r.id);
    expect(pages.map((p) => p.map((r) => r.seq))).toEqual([[2, 3], [4]]);
    expect(pages.flat().map((r) => [r.kind, r.watch])).toEqual([
      ['full', { state: 'degraded', reason: 'inotify watch limit reached' }],
      ['event', null],
      ['full', { state: 'ok', reason: null }],
    ]);
    expect(pages[0]![0]!.receivedAt).toBe(at(10).toISOString());
    expect((await store.exports.reportBefore({ hostId: id, before: at(20) }))?.seq).toBe(3);
    expect((await store.exports.reportBefore({ hostId: id, before: at(20), kind: 'full' }))?.seq).toBe(2);
    expect(await store.exports.reportBefore({ hostId: id, before: at(0) })).toBeNull();
  });

  it('pages the findings open during a period, with every approval: who, ticket, expiry, reopening, and the version a re-baseline opened', async () => {
    const analyst = await store.createApiToken('analyst', t0, 'Ana Lyst');
    const auth = (await store.authenticateApiToken(analyst))!;
    const actor = { id: auth.tokenId, role: 'analyst', name: 'Ana Lyst' };
    const id = await enrol('a');
    // Resolved before the period: left out. Open through it: in. First seen after it: left out.
    await report(id, 1, 'full', [file('/usr/bin/gone'), file('/usr/bin/kept'), file('/etc/approved')], at(0));
    await report(id, 2, 'full', [file('/usr/bin/kept'), file('/etc/approved')], at(1));
    const [, kept, approved] = (await store.listFindings(id, { state: 'all' }, at(2)))!;
    await store.triage.approve({ hostId: id, findingIds: [approved!.id], reason: 'planned change', ticket: 'CHG-1', expiresAt: at(30).toISOString(), actor, now: at(3) });
    await store.triage.reopen({ hostId: id, findingId: approved!.id, reason: 'look again', actor, now: at(4) });
    await store.triage.approve({ hostId: id, findingIds: [approved!.id], reason: 'looked again', ticket: 'CHG-2', actor, now: at(5) });
    const rebased = await store.triage.rebaseline({ hostId: id, reason: 'new normal', ticket: 'CHG-3', actor, now: at(6) });
    await report(id, 3, 'full', [file('/usr/bin/kept'), file('/etc/approved'), file('/srv/late')], at(50));

    const pages = await all((after: number | undefined) => store.exports.pageFindings({ hostId: id, from: at(2), to: at(40), after, limit: 1 }), (f) => f.id);
    expect(pages.map((p) => p.map((f) => f.path))).toEqual([['/usr/bin/kept'], ['/etc/approved']]);
    const rows = pages.flat();
    expect(rows[0]).toMatchObject({ hostId: id, kind: 'file-added', severity: 'high', source: 'scan', resolvedAt: null, waived: false, firstSeen: at(0).toISOString(), detail: { path: '/usr/bin/kept' } });
    expect(rows[0]!.id).toBe(kept!.id);

    const approvals = await store.exports.approvalsOf(rows.map((r) => r.id));
    expect(approvals.get(kept!.id)!.map((a) => [a.kind, a.ticket, a.baselineVersion])).toEqual([['rebaseline', 'CHG-3', rebased.version]]);
    expect(approvals.get(approved!.id)).toMatchObject([
      { kind: 'finding', reason: 'planned change', ticket: 'CHG-1', expiresAt: at(30).toISOString(), createdAt: at(3).toISOString(), createdBy: auth.tokenId, createdByName: 'Ana Lyst', reopenedAt: at(4).toISOString(), baselineVersion: null },
      { kind: 'finding', reason: 'looked again', ticket: 'CHG-2', expiresAt: null, reopenedAt: null },
      { kind: 'rebaseline', ticket: 'CHG-3', baselineVersion: rebased.version },
    ]);
    expect(approvals.get(approved!.id)![0]!.identity).toBe(rows[1]!.identity);
  });

  it('says which rule waived a finding and pages change sets seen in the period', async () => {
    const id = await enrol('a');
    const cronTab: Finding = { ...file('/etc/crontab'), changeSet: 'apt-1' };
    const frame = reportFrame(id, 1, 'full', [cronTab], at(1));
    frame.report.changeSets = [{ id: 'apt-1', tool: 'apt', command: 'apt-get install cron', packages: 1 }];
    await store.ingestBatch([{ type: 'report', agentId: id, frame, receivedAt: at(1) }]);
    await store.triage.saveRules({ set: parseRuleSet({ schema: 'quicksand.rules/v1', rules: [{ id: 'cron-is-config', match: { path: '/etc/crontab' }, action: { type: 'suppress' } }] }, 'test'), actor: { id: 'tok', role: 'admin' }, now: at(2) });
    const [row] = await store.exports.pageFindings({ hostId: id, from: at(0), to: at(5), limit: 10 });
    expect(row).toMatchObject({ waived: true, changeSet: 'apt-1', decision: { suppressed: { rule: 'cron-is-config' } } });
    expect(await store.exports.pageChangeSets({ hostId: id, from: at(0), to: at(5), limit: 10 })).toMatchObject([{ hostId: id, id: 'apt-1', tool: 'apt', command: 'apt-get install cron', packages: 1 }]);
    expect(await store.exports.pageChangeSets({ hostId: id, from: at(2), to: at(5), limit: 10 })).toEqual([]);
  });

  it("gives a manifest's digest and policy, of an image version or a host's ready baseline", async () => {
    const manifest: Manifest = {
      schema: MANIFEST_SCHEMA,
      image: { name: 'web', version: '42', createdAt: t0.toISOString(), source: 'root' },
      policy: { tracked: ['/usr', '/etc'], ignored: ['/var/log/**'], mutable: ['/etc/resolv.conf'] },
      packages: [],
      files: [],
    } as unknown as Manifest;
    await store.saveManifest(manifest, t0);
    const row = await store.exports.manifest({ image: { name: 'web', version: '42' } });
    expect(row).toMatchObject({ image: { name: 'web', version: '42' }, baselineVersion: null, policy: { tracked: ['/usr', '/etc'], ignored: ['/var/log/**'], mutable: ['/etc/resolv.conf'] }, packages: 0, files: 0 });
    expect(row!.sha256).toBe(createHash('sha256').update(JSON.stringify(manifest)).digest('hex'));
    expect(await store.exports.manifest({ image: { name: 'web', version: '43' } })).toBeNull();
    expect(await store.exports.manifest({ hostId: 'qsa-none', baselineVersion: 1 })).toBeNull();
  });
});
