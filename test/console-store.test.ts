// The console's reads in SQL, on every store backend: the fleet page's filters, pages, counts and
// cohorts, its CSV, the host page's findings grouped by change set a page at a time, and the
// status history with the trend of pets it gives. The same answers from SQLite and PostgreSQL.
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SESSION_COOKIE } from '../shared/console.js';
import type { Finding } from '../shared/report.js';
import { migrate } from '../server/store/db.js';
import { MIGRATIONS } from '../server/store/migrations.js';
import { openPostgres } from '../server/store/postgres/db.js';
import { PG_MIGRATIONS } from '../server/store/postgres/migrations.js';
import type { FleetQuery, Store } from '../server/store/types.js';
import { createConsole } from '../server/web/console.js';
import { fleetCsvStream, fleetData, imagesData } from '../server/web/fleet-data.js';
import { STORE_BACKENDS, reportFrame } from './helpers/store-backends.js';
import type { FreshStore } from './helpers/store-backends.js';

const T0 = new Date('2026-12-01T10:00:00Z');
const at = (ms: number): Date => new Date(T0.getTime() + ms);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = at(60_000);
const ana = { id: 'user:ana', role: 'analyst', name: 'ana' };
const high: Finding = { kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: 'netcat-openbsd', after: '1.2' };
const medium: Finding = { kind: 'file-modified', severity: 'medium', path: '/etc/motd' };

describe.each(STORE_BACKENDS)('the console reads on the $name store', (backend) => {
  let db: FreshStore;
  let store: Store;
  const id: Record<string, string> = {};

  async function report(name: string, hostname: string, seq: number, findings: Finding[], when: Date, over: { image?: [string, string]; degraded?: boolean } = {}): Promise<void> {
    const frame = reportFrame(id[name]!, seq, 'full', findings, when);
    frame.report.host.hostname = hostname;
    if (over.image !== undefined) frame.report.image = { name: over.image[0], version: over.image[1] };
    if (over.degraded === true) frame.report.watch = { state: 'degraded', reason: 'inotify watch limit reached' };
    await store.ingestBatch([{ type: 'report', agentId: id[name]!, frame, receivedAt: when }]);
  }

  beforeAll(async () => {
    db = await backend.fresh();
    store = db.store;
    const secret = await store.createEnrollSecret(T0);
    for (const name of ['a', 'b', 'c', 'd', 'e', 'f', 'g']) id[name] = (await store.enrollAgent(secret, name, at(-3 * DAY)))!.agentId;
    // g: a pet two days ago, approved back to cattle yesterday, and reporting the same today.
    await report('g', 'golf', 1, [high], at(-2 * DAY));
    const g = (await store.listFindings(id.g!, { state: 'open' }, at(-DAY)))!;
    await store.triage.approve({ hostId: id.g!, findingIds: g.map((f) => f.id), reason: 'CHG-7 netcat for debugging', actor: ana, now: at(-DAY) });
    await report('g', 'golf', 2, [high], T0);
    await report('a', 'alpha', 1, [high], T0, { image: ['web', '1'] });
    await report('b', 'Bravo', 1, [], T0, { image: ['web', '2'], degraded: true });
    await report('c', 'charlie', 1, [medium], T0, { image: ['db', '7'] });
    await report('e', 'echo', 1, [], at(-3 * HOUR), { image: ['web', '1'] });
    await report('f', 'alpha', 1, [], T0, { image: ['web', '1'] });
    await store.triage.setLabels({ hostId: id.a!, labels: { env: 'prod' }, actor: ana, now: T0 });
    await store.triage.setLabels({ hostId: id.c!, labels: { env: 'dev', team: 'Payments' }, actor: ana, now: T0 });
    expect(await store.triage.markStale(at(-2 * HOUR), T0)).toEqual([id.e]);
  });
  afterAll(async () => {
    await db.drop();
  });

  it('keeps the hosts of each filter, ordered by hostname then id, and counts the same in SQL', async () => {
    // Bytewise order: upper case first; the two alphas by id.
    const all = await store.fleetHosts({}, { limit: 100 }, NOW);
    expect(all.map((h) => h.hostname)).toEqual(['Bravo', 'alpha', 'alpha', 'charlie', 'd', 'echo', 'golf']);
    expect(all.filter((h) => h.hostname === 'alpha').map((h) => h.id)).toEqual([id.a!, id.f!].sort());
    expect(all.find((h) => h.id === id.d)).toMatchObject({ status: 'enrolled', image: null });
    // Two hosts share a name: each is told apart.
    expect(all.filter((h) => h.hostname === 'alpha').map((h) => h.displayName)).toEqual(expect.arrayContaining([expect.stringMatching(/^alpha \(agent /), expect.stringMatching(/^alpha \(agent /)]));

    const cases: Array<[FleetQuery, string[]]> = [
      [{ status: 'pet' }, [id.a!, id.c!]],
      [{ status: 'cattle' }, [id.b!, id.f!, id.g!]],
      [{ status: 'stale' }, [id.e!]],
      [{ status: 'enrolled' }, [id.d!]],
      [{ image: 'web' }, [id.a!, id.b!, id.e!, id.f!, id.g!]],
      [{ image: 'web', version: '1' }, [id.a!, id.e!, id.f!]],
      [{ version: '7' }, [id.c!]],
      [{ label: 'env=prod' }, [id.a!]],
      [{ label: 'env' }, [id.a!, id.c!]],
      [{ label: 'env=' }, []],
      // g's high finding is approved: it counts for nothing.
      [{ severity: 'high' }, [id.a!]],
      [{ severity: 'medium' }, [id.a!, id.c!]],
      [{ watch: 'degraded' }, [id.b!]],
      [{ q: 'BRAV' }, [id.b!]],
      [{ q: 'team=pay' }, [id.c!]],
      [{ q: id.e!.slice(0, 12).toUpperCase() }, [id.e!]],
      [{ q: 'web', status: 'cattle', version: '1' }, [id.f!]],
      [{ q: '%' }, []],
    ];
    for (const [query, want] of cases) {
      const got = await store.fleetHosts(query, { limit: 100 }, NOW).catch((err: unknown) => {
        throw new Error(`${JSON.stringify(query)}: ${(err as Error).message}`);
      });
      expect({ query, ids: got.map((h) => h.id).sort() }).toEqual({ query, ids: [...want].sort() });
      expect({ query, n: await store.fleetCount(query, NOW) }).toEqual({ query, n: want.length });
    }
  });

  it('pages by offset and by key (the CSV), in the same order', async () => {
    const all = (await store.fleetHosts({}, { limit: 100 }, NOW)).map((h) => h.id);
    expect((await store.fleetHosts({}, { limit: 3, offset: 3 }, NOW)).map((h) => h.id)).toEqual(all.slice(3, 6));
    const byKey: string[] = [];
    let after: { hostname: string; id: string } | undefined;
    for (;;) {
      const page = await store.fleetHosts({}, { limit: 2, ...(after === undefined ? {} : { after }) }, NOW);
      byKey.push(...page.map((h) => h.id));
      if (page.length < 2) break;
      after = { hostname: page[1]!.hostname, id: page[1]!.id };
    }
    expect(byKey).toEqual(all);
  });

  it('counts the statuses and the image cohorts from aggregates', async () => {
    expect(await store.fleetSummary(NOW, 10)).toEqual({
      counts: { cattle: 3, pet: 2, stale: 1, enrolled: 1 },
      cohorts: [
        { image: 'db', version: '7', hosts: 1, pets: 1 },
        { image: 'web', version: '1', hosts: 3, pets: 1 },
        { image: '(no image)', version: '', hosts: 1, pets: 0 },
        { image: 'web', version: '2', hosts: 1, pets: 0 },
        { image: 'web', version: '42', hosts: 1, pets: 0 },
      ],
    });
    expect((await store.fleetSummary(NOW, 1)).cohorts).toHaveLength(1);
  });

  it('keeps each status change with its cause and actor, and the trend shows a pet on the days it was one only', async () => {
    const g = (await store.statusHistory(id.g!, 10))!;
    expect(g.map((c) => [c.from, c.to, c.at, c.cause, c.actor])).toEqual([
      ['enrolled', 'pet', at(-2 * DAY).toISOString(), 'report', null],
      ['pet', 'cattle', at(-DAY).toISOString(), 'approval', 'ana'],
    ]);
    expect((await store.statusHistory(id.e!, 10))!.map((c) => [c.from, c.to, c.cause, c.actor])).toEqual([
      ['enrolled', 'cattle', 'report', null],
      ['cattle', 'stale', 'stale', 'system'],
    ]);
    expect(await store.statusHistory('no-such-host', 10)).toBeNull();

    const data = await fleetData(store, { page: 1 }, NOW);
    const last = data.trend.slice(-4);
    // g was a pet at the end of 11-29 only; a and c since 12-01.
    expect(last).toEqual([
      { day: '2026-11-28', pets: 0 },
      { day: '2026-11-29', pets: 1 },
      { day: '2026-11-30', pets: 0 },
      { day: '2026-12-01', pets: 2 },
    ]);
    expect(data.trend).toHaveLength(30);
    expect(data.trend[0]).toEqual({ day: '2026-11-02', pets: 0 });
  });

  it('lists the triage of a host, its findings and change sets, and no other host', async () => {
    const entries = await store.hostAudit(id.g!, 10);
    expect(entries.map((e) => [e.action, e.actorName, e.reason])).toEqual([['approve', 'ana', 'CHG-7 netcat for debugging']]);
    expect((await store.hostAudit(id.a!, 10)).map((e) => e.action)).toEqual(['labels-set']);
  });

  it('pages a host\'s open findings grouped by change set, the approval looked up for the page', async () => {
    const secret = await store.createEnrollSecret(T0);
    id.big = (await store.enrollAgent(secret, 'big', T0))!.agentId;
    const file = (n: number, cs?: string): Finding => ({ kind: 'file-added', severity: 'medium', path: `/etc/f${n}.conf`, ...(cs === undefined ? {} : { changeSet: cs }) });
    const frame = reportFrame(id.big, 1, 'full', [file(1, 'apt:A'), file(2), file(3, 'apt:B'), file(4, 'apt:A'), file(5, 'apt:B'), file(6)], T0);
    frame.report.changeSets = [
      { id: 'apt:A', tool: 'apt', command: 'apt-get install a', packages: 1 },
      { id: 'apt:B', tool: 'apt', command: 'apt-get install b', packages: 1 },
    ];
    await store.ingestBatch([{ type: 'report', agentId: id.big, frame, receivedAt: T0 }]);
    const open = (await store.listFindings(id.big, { state: 'open' }, NOW))!;
    const idOf = (p: string) => open.find((f) => f.path === p)!.id;
    await store.triage.approve({ hostId: id.big, findingIds: [idOf('/etc/f5.conf')], reason: 'expected', actor: ana, now: T0 });

    const first = (await store.pageOpenFindings(id.big, { offset: 0, limit: 3 }, NOW))!;
    const second = (await store.pageOpenFindings(id.big, { offset: 3, limit: 3 }, NOW))!;
    expect(first.total).toBe(6);
    expect([...first.findings, ...second.findings].map((f) => [f.path, f.changeSet?.id ?? null])).toEqual([
      ['/etc/f1.conf', 'apt:A'],
      ['/etc/f4.conf', 'apt:A'],
      ['/etc/f3.conf', 'apt:B'],
      ['/etc/f5.conf', 'apt:B'],
      ['/etc/f2.conf', null],
      ['/etc/f6.conf', null],
    ]);
    // The same triage as the full list gives.
    const full = new Map(open.map((f) => [f.id, f]));
    for (const f of [...first.findings, ...second.findings]) expect(f).toEqual({ ...full.get(f.id)!, triage: (f.path === '/etc/f5.conf' ? f : full.get(f.id)!).triage });
    expect(second.findings.find((f) => f.path === '/etc/f5.conf')!.triage).toMatchObject({ state: 'approved', approval: { reason: 'expected' } });
    expect(second.findings[0]!.changeSet).toEqual({ id: 'apt:B', tool: 'apt', command: 'apt-get install b' });
    expect(await store.pageOpenFindings('no-such-host', { offset: 0, limit: 3 }, NOW)).toBeNull();
  });

  it('serves the fleet CSV of exactly the filtered rows, and the pages, through the console', async () => {
    await store.createUser({ name: 'viewer', role: 'auditor', passwordHash: 'not-used', now: NOW });
    const { token } = await store.createSession({ user: 'viewer', now: NOW, idleMs: HOUR, absoluteMs: HOUR });
    const app = createConsole({ store, clock: () => NOW });
    const headers = { cookie: `${SESSION_COOKIE}=${token}` };
    const csv = await (await app.request('/fleet.csv?image=web&version=1', { headers })).text();
    const lines = csv.split('\r\n');
    expect(lines[0]).toBe('id,hostname,status,image,version,open_findings,drift_score,pet_since,last_report_at,watch,labels');
    expect(lines.slice(1, -1).map((l) => l.split(',')[0]).sort()).toEqual([id.a!, id.e!, id.f!].sort());
    expect(lines.at(-1)).toBe('');
    // Read two rows at a time, by key: the same CSV.
    const paged = await new Response(fleetCsvStream(store, { page: 1, image: 'web', version: '1' }, NOW, 2)).text();
    expect(paged).toBe(csv);
    const everyHost = (await new Response(fleetCsvStream(store, { page: 1 }, NOW, 2)).text()).split('\r\n').slice(1, -1).map((l) => l.split(',')[0]);
    expect(everyHost).toEqual((await store.fleetHosts({}, { limit: 100 }, NOW)).map((h) => h.id));
    // a, c, and the host of many findings the test before added.
    const page = await (await app.request('/?status=pet', { headers })).text();
    expect(page).toContain('Page 1 of 1 (3 hosts)');
    const host = await (await app.request(`/hosts/${id.g}`, { headers })).text();
    expect(host).toContain(`${at(-DAY).toISOString()}: pet → cattle, by an approval (ana)`);
    expect(host).toContain('approve by ana (analyst) — CHG-7 netcat for debugging');
  });
});

const SEED_HOSTS = [
  ['h-pet', 'pet', '2026-11-01T00:00:00.000Z', 'pet', '2026-11-20T08:00:00.000Z', '2026-12-01T09:00:00.000Z'],
  ['h-cattle', 'cattle', '2026-11-01T00:00:00.000Z', 'cattle', null, '2026-12-01T09:00:00.000Z'],
  ['h-new', 'new', '2026-11-30T00:00:00.000Z', 'enrolled', null, null],
] as const;
const SEEDED = [
  { host_id: 'h-cattle', from_status: null, to_status: 'cattle', at: '2026-12-01T09:00:00.000Z', cause: 'migration', actor: null },
  { host_id: 'h-new', from_status: null, to_status: 'enrolled', at: '2026-11-30T00:00:00.000Z', cause: 'migration', actor: null },
  { host_id: 'h-pet', from_status: null, to_status: 'pet', at: '2026-11-20T08:00:00.000Z', cause: 'migration', actor: null },
];

// The migrations before the one that makes the status history: later ones may follow it.
function historyMigration(migrations: readonly string[]): number {
  const i = migrations.findIndex((m) => m.includes('CREATE TABLE host_status_changes'));
  if (i < 0) throw new Error('no migration creates host_status_changes');
  return i;
}

describe('the status history migration', () => {
  it('seeds each host with its status now, a pet from when it became one (SQLite)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'quicksand-history-'));
    try {
      const file = path.join(dir, 'server.db');
      const db = new Database(file);
      for (const [v, m] of MIGRATIONS.slice(0, historyMigration(MIGRATIONS)).entries()) {
        db.exec(m);
        db.pragma(`user_version = ${v + 1}`);
      }
      const host = db.prepare(`INSERT INTO hosts (id, token_hash, hostname, enrolled_at, status, pet_since, last_report_at) VALUES (?, x'', ?, ?, ?, ?, ?)`);
      for (const h of SEED_HOSTS) host.run(...h);
      migrate(db, file);
      expect(db.prepare('SELECT host_id, from_status, to_status, at, cause, actor FROM host_status_changes ORDER BY host_id').all()).toEqual(SEEDED);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('seeds the same on PostgreSQL', async () => {
    const name = `qs_seed_${process.pid}`;
    const admin = async (sql: string) => {
      const c = new pg.Client({ connectionString: inject('postgresUrl').replace('{db}', 'postgres') });
      await c.connect();
      await c.query(sql).finally(() => c.end());
    };
    await admin(`CREATE DATABASE ${name}`);
    try {
      const url = inject('postgresUrl').replace('{db}', name);
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query('CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at text NOT NULL)');
      for (const [v, m] of PG_MIGRATIONS.slice(0, historyMigration(PG_MIGRATIONS)).entries()) {
        await c.query(m);
        await c.query('INSERT INTO schema_migrations VALUES ($1, $2)', [v + 1, T0.toISOString()]);
      }
      for (const h of SEED_HOSTS) await c.query(`INSERT INTO hosts (id, token_hash, hostname, enrolled_at, status, pet_since, last_report_at) VALUES ($1, '\\x', $2, $3, $4, $5, $6)`, [...h]);
      await c.end();
      const db = await openPostgres(url);
      expect(await db.rows('SELECT host_id, from_status, to_status, at, cause, actor FROM host_status_changes ORDER BY host_id')).toEqual(SEEDED);
      await db.close();
    } finally {
      await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  });
});

describe.each(STORE_BACKENDS)('the images page on the $name store', (backend) => {
  let db: FreshStore;
  afterAll(async () => {
    await db?.drop();
  });

  it('counts the hosts on a version older than their image\'s newest from the cohorts, and lists only as many as it is asked', async () => {
    db = await backend.fresh();
    const store = db.store;
    const secret = await store.createEnrollSecret(T0);
    const seen: Array<[string, string, Date]> = [['old-1', '1', T0], ['old-2', '1', T0], ['new-1', '2', at(60_000)], ['other', '9', T0]];
    for (const [hostname, version, when] of seen) {
      const agentId = (await store.enrollAgent(secret, hostname, T0))!.agentId;
      const frame = reportFrame(agentId, 1, 'full', [], when);
      frame.report.host.hostname = hostname;
      frame.report.image = { name: hostname === 'other' ? 'db' : 'web', version };
      await store.ingestBatch([{ type: 'report', agentId, frame, receivedAt: when }]);
    }
    const all = await imagesData(store, NOW);
    expect([...all.newest]).toEqual(expect.arrayContaining([['web', '2'], ['db', '9']]));
    expect(all.outdated.total).toBe(2);
    expect(all.outdated.hosts.map((h) => h.hostname).sort()).toEqual(['old-1', 'old-2']);
    const one = await imagesData(store, NOW, 1);
    expect([one.outdated.total, one.outdated.hosts.length]).toEqual([2, 1]);
  });
});
