import { openDatabase } from './db.js';
import { asyncPort } from './async-adapter.js';
import type { Synchronous } from './async-adapter.js';
import { createAlertQueue, createSinkStore } from './alert-queue.js';
import { createAlerting } from './alerting.js';
import { createTriage } from './triage.js';
import { createMaintenance } from './maintenance.js';
import { createBaselines } from './baselines.js';
import { createCredentials } from './credentials.js';
import { createUsers } from './users.js';
import { createImages } from './images.js';
import { createIngest } from './ingest.js';
import { createQueries } from './queries.js';
import { createContainerQueries } from './containers.js';
import { createCluster } from './cluster.js';
import { createExportQueries } from './export-queries.js';
import type { Store } from './types.js';
import { acceptManifestUpload, acceptObservationUpload } from './uploads.js';
import type { AlertPolicy } from '../alerts/policy.js';

export interface SqliteStoreOptions {
  /** A host that has not reported for this long is `stale`. */
  staleAfterMs?: number;
  /** The alert policy of what this connection plans (its ingest, triage's resolves); the ingest thread is given its own. */
  alertPolicy?: AlertPolicy;
}

export const DEFAULT_STALE_AFTER_MS = 2 * 60 * 60 * 1000;

/**
 * The embedded store: one SQLite file, opened by one server process. Written synchronously
 * (better-sqlite3; a transaction never awaits) and served through the async Store interface.
 */
export function createSqliteStore(file: string, opts: SqliteStoreOptions = {}): Store {
  const db = openDatabase(file);
  const alerting = createAlerting(db, opts.alertPolicy);
  const triage = createTriage(db, alerting);
  const images = createImages(db);
  const baselines = createBaselines(db, triage);
  // Typed as the synchronous shape of Store: a method missing here, or one of Store not
  // returning a Promise, fails to compile.
  const store: Synchronous<Store> = {
    ...createCredentials(db),
    ...createUsers(db),
    ...createIngest(db, alerting),
    ...createQueries(db, opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS),
    ...createContainerQueries(db, opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS),
    ...images,
    exports: createExportQueries(db),
    ...createSinkStore(db),
    // What a trigger says is decided when it is sent, from its findings' triage state then.
    alertQueue: createAlertQueue(db, (d, now) => alerting.compose(d, now)),
    heldAlerts: {
      // IMMEDIATE: it reads the hosts' memories, then writes them, beside the ingest thread.
      release: (() => {
        const tx = db.transaction((now: Date) => alerting.releaseDue(now));
        // Read first, without the write lock: most seconds nothing is due.
        const anyDue = db.prepare<[number], { n: number }>('SELECT 1 AS n FROM host_alert_memory WHERE release_at IS NOT NULL AND release_at <= ? LIMIT 1');
        return (now: Date) => (anyDue.get(now.getTime()) === undefined ? [] : tx.immediate(now));
      })(),
      list: (hostId) => alerting.listHeld(hostId),
    },
    triage,
    cluster: createCluster(db),
    maintenance: createMaintenance(db),
    baselines,
    uploads: {
      image: (body, now) => acceptManifestUpload(images, body, now),
      observation: (req) => acceptObservationUpload(baselines, req),
    },
    close: () => db.close(),
  };
  return asyncPort<Store>(store);
}
