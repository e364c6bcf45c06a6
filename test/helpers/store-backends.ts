// The store backends every store-level suite runs against: one suite, `describe.each(STORE_BACKENDS)`,
// not a copy per backend. Today SQLite on a real temporary file; a PostgreSQL backend is one more
// entry here (a throwaway database per `fresh()`), and every suite below runs on it too.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { REPORT_SCHEMA, summarize } from '../../shared/report.js';
import type { Finding } from '../../shared/report.js';
import type { ReportFrame } from '../../shared/protocol.js';
import { createSqliteStore } from '../../server/store/sqlite-store.js';
import type { SqliteStoreOptions } from '../../server/store/sqlite-store.js';
import type { Store } from '../../server/store/types.js';

export type StoreOptions = SqliteStoreOptions;

/** One empty database of a backend, with a store open on it. */
export interface FreshStore {
  store: Store;
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

export const STORE_BACKENDS: readonly StoreBackend[] = [sqlite];

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
