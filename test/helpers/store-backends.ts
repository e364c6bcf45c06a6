// The store backends every store-level suite runs against: one suite, `describe.each(STORE_BACKENDS)`,
// not a copy per backend: SQLite on a real temporary file, and PostgreSQL on a real server (the
// run's throwaway cluster, test/postgres-setup.ts), a fresh database copied from a migrated
// template per `fresh()`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { inject } from 'vitest';
import { REPORT_SCHEMA, summarize } from '../../shared/report.js';
import type { Finding } from '../../shared/report.js';
import type { ReportFrame } from '../../shared/protocol.js';
import { createSqliteStore } from '../../server/store/sqlite-store.js';
import type { SqliteStoreOptions } from '../../server/store/sqlite-store.js';
import type { Store } from '../../server/store/types.js';
import { createPostgresStore } from '../../server/store/postgres/store.js';
import { TEMPLATE_DATABASE } from '../postgres-setup.js';

export type StoreOptions = SqliteStoreOptions;

/** One empty database of a backend, with a store open on it. */
export interface FreshStore {
  store: Store;
  /** The database as `quicksand-server start --db` takes it: a file, or a postgres:// URL. */
  db: string;
  /**
   * Another connection (as the ingest writer's, or another server node's) that writes to host
   * `hostId` and holds its transaction open for `ms` before committing. Resolves once it holds it;
   * the returned function waits for that connection to finish.
   */
  otherWriterOnHost(hostId: string, ms: number): Promise<() => Promise<void>>;
  /** Closes the store and removes the database. */
  drop(): Promise<void>;
}

export interface StoreBackend {
  name: string;
  fresh(opts?: StoreOptions): Promise<FreshStore>;
}

const sqlite: StoreBackend = {
  name: 'sqlite',
  async fresh(opts = {}) {
    const dir = mkdtempSync(path.join(tmpdir(), 'quicksand-store-'));
    const file = path.join(dir, 'server.db');
    const store = createSqliteStore(file, opts);
    return {
      store,
      db: file,
      async otherWriterOnHost(hostId, ms) {
        const worker = new Worker(
          `const Database = require('better-sqlite3');
           const { workerData, parentPort } = require('node:worker_threads');
           const db = new Database(workerData.file);
           db.exec('BEGIN IMMEDIATE');
           db.prepare('UPDATE hosts SET outbox_depth = outbox_depth + 1 WHERE id = ?').run(workerData.hostId);
           parentPort.postMessage('locked');
           setTimeout(() => { db.exec('COMMIT'); db.close(); parentPort.postMessage('committed'); }, workerData.ms);`,
          { eval: true, workerData: { file, hostId, ms } },
        );
        const committed = new Promise<void>((resolve, reject) => {
          worker.on('message', (m) => m === 'committed' && resolve());
          worker.once('error', reject);
        });
        await new Promise<void>((resolve, reject) => {
          worker.once('message', () => resolve());
          worker.once('error', reject);
        });
        return async () => {
          await committed;
          await worker.terminate();
        };
      },
      async drop() {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

let databases = 0;

/** Runs one statement on the cluster's maintenance database. */
async function onCluster(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: inject('postgresUrl').replace('{db}', 'postgres') });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

const postgres: StoreBackend = {
  name: 'postgres',
  async fresh(opts = {}) {
    const name = `qs_${process.pid}_${++databases}`;
    // FILE_COPY: copying the small template's files is faster than WAL-logging every page.
    await onCluster(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DATABASE} STRATEGY FILE_COPY`);
    const url = inject('postgresUrl').replace('{db}', name);
    const store = await createPostgresStore(url, { ...opts, poolSize: 4 });
    return {
      store,
      db: url,
      async otherWriterOnHost(hostId, ms) {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        await client.query('BEGIN');
        await client.query('UPDATE hosts SET outbox_depth = outbox_depth + 1 WHERE id = $1', [hostId]);
        const committed = new Promise<void>((resolve, reject) => {
          setTimeout(() => {
            client.query('COMMIT').then(() => client.end()).then(resolve, reject);
          }, ms);
        });
        return () => committed;
      },
      async drop() {
        await store.close();
        await onCluster(`DROP DATABASE ${name} WITH (FORCE)`);
      },
    };
  },
};

export const STORE_BACKENDS: readonly StoreBackend[] = [sqlite, postgres];

/** A hash as the agent writes it: 64 hex digits, here from a number. */
export const fakeHash = (n: number): string => n.toString(16).padStart(64, '0');

/** Report `seq` of an agent on image web 42, chained onto report seq-1 (`prevHash` to break that). */
export function reportFrame(agentId: string, seq: number, kind: 'full' | 'event', findings: Finding[], at: Date, prevHash: string | null = seq === 1 ? null : fakeHash(seq - 1)): ReportFrame {
  return {
    type: 'report',
    agentId,
    seq,
    prevHash,
    hash: fakeHash(seq),
    kind,
    report: {
      schema: REPORT_SCHEMA,
      image: { name: 'web', version: '42' },
      host: { hostname: `host-${agentId.slice(0, 4)}`, root: '/' },
      scannedAt: at.toISOString(),
      summary: summarize(findings),
      stats: { files: 1, packages: 1, bytesHashed: 0, durationMs: 1 },
      findings,
      warnings: [],
    },
  };
}
