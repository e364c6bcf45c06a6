// Migrations 7 and 8 on a database that already holds hosts and findings: a store at version 6 is
// made by taking them back out of a populated one by hand (their exact inverse), with a stored
// count that is wrong, as one written before a finding of the server's own could be. Upgraded,
// the host must be counted in full at its next report, and counted by what it adds after that.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import type { Finding } from '../../../shared/report.js';
import { fakeHash, reportFrame } from '../../../test/helpers/store-backends.js';
import { TEMPLATE_DATABASE } from '../../../test/postgres-setup.js';
import { PG_MIGRATIONS } from './migrations.js';
import { createPostgresStore } from './store.js';

const name = `qs_upgrade_${process.pid}`;
const url = (db: string): string => inject('postgresUrl').replace('{db}', db);
const t0 = new Date('2026-11-29T12:00:00Z');
const at = (minutes: number): Date => new Date(t0.getTime() + minutes * 60_000);

async function sql<T = Record<string, unknown>>(db: string, text: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url(db) });
  await c.connect();
  try {
    return (await c.query(text)).rows as T[];
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  await sql('postgres', `CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DATABASE} STRATEGY FILE_COPY`);
});
afterAll(async () => {
  await sql('postgres', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
});

describe('PostgreSQL migrations 7 and 8 on a populated database', () => {
  it('adds its columns and drops the identity index in place, and the next report counts each host in full', async () => {
    expect(PG_MIGRATIONS).toHaveLength(8); // taken back out below: a later one would need its inverse too
    const curl: Finding = { kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: 'curl', after: '7.88' };
    const passwd: Finding = { kind: 'file-modified', severity: 'medium', path: '/etc/passwd', before: fakeHash(5), after: fakeHash(6) };
    const nc: Finding = { kind: 'package-added', severity: 'low', ecosystem: 'dpkg', name: 'nc', after: '1.2' };

    const first = await createPostgresStore(url(name), { poolSize: 2 });
    const a = (await first.enrollAgent(await first.createEnrollSecret(t0), 'a', t0))!;
    const report = (seq: number, kind: 'full' | 'event', findings: Finding[], when: Date) => ({ type: 'report' as const, agentId: a.agentId, frame: reportFrame(a.agentId, seq, kind, findings, when), receivedAt: when });
    await first.ingestBatch([report(1, 'full', [curl, passwd], t0)]);
    await first.close();

    // Back to version 6, with a stored count that counting would not give.
    await sql(name, `ALTER TABLE findings DROP COLUMN counted_seq;
      ALTER TABLE hosts DROP COLUMN recount_at;
      CREATE INDEX findings_open_identity ON findings (host_id, identity) WHERE resolved_at IS NULL;
      ALTER TABLE findings RESET (fillfactor);
      DELETE FROM schema_migrations WHERE version IN (7, 8);
      UPDATE hosts SET drift_score = 999, open_findings = 99`);

    const store = await createPostgresStore(url(name), { poolSize: 2 });
    try {
      expect((await sql<{ v: number }>(name, 'SELECT max(version) AS v FROM schema_migrations'))[0]!.v).toBe(8);
      expect(await sql(name, 'SELECT recount_at FROM hosts')).toEqual([{ recount_at: '' }]);
      expect(await sql(name, "SELECT indexname FROM pg_indexes WHERE indexname = 'findings_open_identity'")).toEqual([]);
      expect((await sql<{ reloptions: string[] }>(name, "SELECT reloptions FROM pg_class WHERE relname = 'findings'"))[0]!.reloptions).toEqual(['fillfactor=80']);
      const stored = async (when: Date) => {
        const [h] = await store.listHosts({}, when);
        return { status: h!.status, open: h!.openFindings, score: h!.driftScore };
      };
      // An event report that only adds a finding: counted in full all the same, as the host was upgraded.
      await store.ingestBatch([report(2, 'event', [nc], at(1))]);
      expect(await stored(at(1))).toEqual({ status: 'pet', open: 3, score: 14 });
      // From then on by what it adds.
      await store.ingestBatch([report(3, 'event', [{ ...nc, name: 'socat' }], at(2))]);
      expect(await stored(at(2))).toEqual({ status: 'pet', open: 4, score: 15 });
      expect((await store.getHost(a.agentId, at(2)))!.openFindings).toBe(4);
    } finally {
      await store.close();
    }
  });
});
