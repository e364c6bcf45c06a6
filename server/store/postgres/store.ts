// The PostgreSQL store: the same Store interface as the embedded SQLite one, for deployments of
// several server nodes on one database. Chosen by a postgres:// --db (or QUICKSAND_DB).
import { randomBytes } from 'node:crypto';
import type { AlertPolicy } from '../../alerts/policy.js';
import type { Store } from '../types.js';
import { manifestUploadResult, parseManifestUpload, parseObservationUpload } from '../uploads.js';
import { createPgAlertQueue, createPgSinkStore } from './alert-queue.js';
import { createPgAlerting } from './alerting.js';
import { createPgBaselines } from './baselines.js';
import { createPgCluster } from './cluster.js';
import { createPgContainerQueries } from './containers.js';
import { createPgCredentials } from './credentials.js';
import { createPgUsers } from './users.js';
import { openPostgres } from './db.js';
import type { PgDatabase } from './db.js';
import { createPgExportQueries } from './export-queries.js';
import { createPgImages } from './images.js';
import { createPgIngest } from './ingest.js';
import { createPgMaintenance } from './maintenance.js';
import { createPgQueries } from './queries.js';
import { createPgTriage } from './triage.js';

export const DEFAULT_STALE_AFTER_MS = 2 * 60 * 60 * 1000;

export interface PostgresStoreOptions {
  staleAfterMs?: number;
  alertPolicy?: AlertPolicy;
  /** The key sink secrets are sealed with (every node of one database needs the same); default: a new one (tests). */
  sinkKey?: Buffer;
  /** Connections in the pool. */
  poolSize?: number;
}

/** True for a --db that names a PostgreSQL database rather than an SQLite file. */
export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

/** A server writes reports through its ingest thread (postgres/ingest-worker.ts), not through this store's pool. */
export type PostgresStore = Store;

/** Connects, migrates, and returns the store; rejects with one clear sentence when the database cannot be reached. */
export async function createPostgresStore(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresStore> {
  const db = await openPostgres(url, { ...(opts.poolSize === undefined ? {} : { max: opts.poolSize }) });
  let auth: PgDatabase;
  try {
    auth = await openPostgres(url, { max: AUTH_POOL_SIZE, migrate: false });
  } catch (err) {
    await db.close();
    throw err;
  }
  return storeOn(db, auth, url, opts);
}

/** Connections that only check tokens (one primary-key lookup each). */
const AUTH_POOL_SIZE = 2;

function storeOn(db: PgDatabase, auth: PgDatabase, url: string, opts: PostgresStoreOptions): PostgresStore {
  const staleAfterMs = opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const sinks = createPgSinkStore(db, opts.sinkKey ?? randomBytes(32));
  const plainQueue = createPgAlertQueue(db);
  const alerting = createPgAlerting(plainQueue, sinks, opts.alertPolicy);
  // What a trigger says is decided when it is sent, from its findings' triage state then.
  const alertQueue = createPgAlertQueue(db, (d, now) => db.tx((q) => alerting.compose(q, d, now)));
  const triage = createPgTriage(db, alerting);
  const images = createPgImages(db);
  const baselines = createPgBaselines(db, triage);
  const ingest = createPgIngest(db, alerting);
  const { listSinksIn: _inTx, sinksOf: _rows, ...sinkStore } = sinks;
  return {
    ...createPgCredentials(db, auth),
    ...createPgUsers(db),
    ...ingest,
    ...createPgQueries(db, staleAfterMs),
    ...createPgContainerQueries(db, staleAfterMs),
    ...images,
    ...sinkStore,
    alertQueue: {
      enqueue: alertQueue.enqueue,
      claimDue: alertQueue.claimDue,
      record: alertQueue.record,
      current: alertQueue.current!,
      listDeliveries: alertQueue.listDeliveries,
      pageDeliveries: alertQueue.pageDeliveries,
      listAttempts: alertQueue.listAttempts,
      attemptsOf: alertQueue.attemptsOf,
    },
    heldAlerts: {
      release: (now) => db.tx((q) => alerting.releaseDue(q, now)),
      list: (hostId) => alerting.listHeld(db, hostId),
    },
    exports: createPgExportQueries(db),
    triage,
    cluster: createPgCluster(db, url),
    maintenance: createPgMaintenance(db),
    baselines,
    uploads: {
      async image(body, now) {
        const manifest = parseManifestUpload(body);
        return manifestUploadResult(manifest, await images.saveManifest(manifest, now));
      },
      async observation(req) {
        const { accepted: _accepted, ...summary } = await baselines.receiveObservation(parseObservationUpload(req));
        return summary;
      },
    },
    close: async () => {
      await Promise.all([db.close(), auth.close()]);
    },
  };
}
