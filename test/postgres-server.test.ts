// The server on PostgreSQL, as it is deployed: `start` and the store commands with a postgres://
// --db, `migrate`, an agent's reports through the real stream (a replay through a second server
// on the same database is stored once), and an unreachable database said in one sentence.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { PROTOCOL_VERSION } from '../shared/protocol.js';
import { startServer } from '../server/server.js';
import { MIGRATIONS } from '../server/store/migrations.js';
import { PG_MIGRATIONS } from '../server/store/postgres/migrations.js';
import { hasStackTrace } from './helpers/cli.js';
import { freePort, runCli } from './helpers/processes.js';
import { openStream } from './helpers/stream-client.js';
import { reportFrame } from './helpers/store-backends.js';

let dir: string;
const created: string[] = [];

async function onCluster(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: inject('postgresUrl').replace('{db}', 'postgres') });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** An empty database (no schema: what an operator creates with createdb). */
async function emptyDatabase(): Promise<string> {
  const name = `qs_server_${process.pid}_${created.length + 1}`;
  await onCluster(`CREATE DATABASE ${name}`);
  created.push(name);
  return inject('postgresUrl').replace('{db}', name);
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'quicksand-pg-server-'));
});
afterAll(async () => {
  for (const name of created) await onCluster(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  rmSync(dir, { recursive: true, force: true });
});

describe('quicksand-server migrate', () => {
  it('applies the PostgreSQL schema by version once, then says it is up to date', async () => {
    const url = await emptyDatabase();
    const first = runCli('server', ['migrate', '--db', url]);
    expect(first.stderr).toBe('');
    expect(first.stdout).toMatch(new RegExp(`applied migrations? ${PG_MIGRATIONS.map((_, i) => i + 1).join(', ')}; schema version ${PG_MIGRATIONS.length}`));
    // The message names where, never the URL's password or query.
    expect(first.stdout).not.toContain('postgres://');
    const again = runCli('server', ['migrate', '--db', url]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`schema is up to date (version ${PG_MIGRATIONS.length})`);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const versions = (await c.query('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r: { version: number }) => r.version);
    await c.end();
    expect(versions).toEqual(PG_MIGRATIONS.map((_, i) => i + 1));
  });

  it('migrates an SQLite file too (QUICKSAND_DB when no --db is given)', () => {
    const file = path.join(dir, 'migrate.db');
    const first = runCli('server', ['migrate', '--db', file]);
    expect(first.stdout).toContain(`${file}: applied migrations 1, `);
    expect(first.stdout).toContain(`schema version ${MIGRATIONS.length}`);
    process.env.QUICKSAND_DB = file;
    try {
      expect(runCli('server', ['migrate']).stdout).toContain(`${file}: schema is up to date`);
    } finally {
      delete process.env.QUICKSAND_DB;
    }
  });

  it('names host and port in one sentence when nothing listens there, without a stack trace', async () => {
    const port = await freePort();
    for (const command of [['migrate'], ['start', '--port', '0'], ['token', 'list']]) {
      const r = runCli('server', [...command, '--db', `postgres://quicksand:secret@127.0.0.1:${port}/fleet`]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`cannot reach PostgreSQL at 127.0.0.1:${port}/fleet: nothing accepts connections there`);
      expect(r.stderr).not.toContain('secret');
      expect(hasStackTrace(r.stderr)).toBe(false);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('a server on PostgreSQL', () => {
  it('stores an agent\'s reports from the stream; the same report through a second server on the database is acked and stored once', async () => {
    const url = await emptyDatabase();
    const opts = { db: url, dataDir: dir, port: 0, host: '127.0.0.1', schedules: false } as const;
    const a = await startServer(opts);
    const b = await startServer(opts);
    try {
      const now = new Date();
      const agent = (await a.store.enrollAgent(await a.store.createEnrollSecret(now), 'pg-host', now))!;
      const health = await fetch(`${a.url}/healthz`);
      expect(health.status).toBe(200);
      const hello = { type: 'hello', protocol: PROTOCOL_VERSION, agentId: agent.agentId, host: { hostname: 'pg-host' }, image: { name: 'web', version: '42' }, lastAckedSeq: 0, outboxDepth: 0 };
      const frames = [1, 2].map((seq) => reportFrame(agent.agentId, seq, seq === 1 ? 'full' : 'event', [], now));

      const toA = await openStream(a.url, agent.token);
      toA.ws.send(JSON.stringify(hello));
      for (const f of frames) toA.ws.send(JSON.stringify(f));
      await toA.next((f) => f.type === 'ack' && f.seq === 2, 10_000);
      toA.ws.close();

      // The agent reconnects through the other node and replays report 2 (its ack was lost).
      const toB = await openStream(b.url, agent.token);
      toB.ws.send(JSON.stringify({ ...hello, lastAckedSeq: 1 }));
      toB.ws.send(JSON.stringify(frames[1]));
      await toB.next((f) => f.type === 'ack' && f.seq === 2, 10_000);
      toB.ws.close();

      expect((await b.store.listReports(agent.agentId)).map((r) => r.seq)).toEqual([1, 2]);
      expect(await b.store.getHost(agent.agentId, new Date())).toMatchObject({ status: 'cattle', lastSeq: 2, reports: 2 });
      expect((await b.store.listFindings(agent.agentId, { state: 'all' }, new Date()))!.map((f) => f.kind)).toEqual([]);
    } finally {
      await a.close();
      await b.close();
    }
  });
  it('writes reports on its writer thread: not ready while the thread is dead, restarted, and storing again', async () => {
    const url = await emptyDatabase();
    const s = await startServer({ db: url, dataDir: dir, port: 0, host: '127.0.0.1', schedules: false });
    try {
      const now = new Date();
      const agent = (await s.store.enrollAgent(await s.store.createEnrollSecret(now), 'pg-thread', now))!;
      const hello = { type: 'hello', protocol: PROTOCOL_VERSION, agentId: agent.agentId, host: { hostname: 'pg-thread' }, image: { name: 'web', version: '42' }, lastAckedSeq: 0, outboxDepth: 0 };
      const c = await openStream(s.url, agent.token);
      c.ws.send(JSON.stringify(hello));
      c.ws.send(JSON.stringify(reportFrame(agent.agentId, 1, 'full', [], now)));
      await c.next((f) => f.type === 'ack' && f.seq === 1, 10_000);

      await s.ingest.kill();
      const down = await fetch(`${s.url}/healthz`);
      expect(down.status).toBe(503);
      expect(JSON.stringify(await down.json())).toContain('ingest writer thread exited');
      // It comes back by itself (its own pool connects again), and the next report is stored.
      const deadline = Date.now() + 10_000;
      while ((await fetch(`${s.url}/healthz`)).status !== 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
      c.ws.send(JSON.stringify(reportFrame(agent.agentId, 2, 'event', [{ kind: 'file-added', severity: 'high', path: '/usr/bin/x' }], now)));
      await c.next((f) => f.type === 'ack' && f.seq === 2, 10_000);
      c.ws.close();
      expect((await s.store.listReports(agent.agentId)).map((r) => r.seq)).toEqual([1, 2]);
    } finally {
      await s.close();
    }
  });
});
