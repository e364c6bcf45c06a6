import { openDatabase } from './db.js';
import { createAlertQueue, createSinkStore } from './alert-queue.js';
import { createAlerting } from './alerting.js';
import { createTriage } from './triage.js';
import { createMaintenance } from './maintenance.js';
import { createBaselines } from './baselines.js';
import { createCredentials } from './credentials.js';
import { createImages } from './images.js';
import { createIngest } from './ingest.js';
import { createQueries } from './queries.js';
import { createContainerQueries } from './containers.js';
import type { Store } from './types.js';
import type { AlertPolicy } from '../alerts/policy.js';

export interface SqliteStoreOptions {
  /** A host that has not reported for this long is `stale`. */
  staleAfterMs?: number;
  /** The alert policy of what this connection plans (its ingest, triage's resolves); the ingest thread is given its own. */
  alertPolicy?: AlertPolicy;
}

export const DEFAULT_STALE_AFTER_MS = 2 * 60 * 60 * 1000;

/** The embedded store: one SQLite file, opened by one server process. */
export function createSqliteStore(file: string, opts: SqliteStoreOptions = {}): Store {
  const db = openDatabase(file);
  const alerting = createAlerting(db, opts.alertPolicy);
  const triage = createTriage(db, alerting);
  return {
    ...createCredentials(db),
    ...createIngest(db, alerting),
    ...createQueries(db, opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS),
    ...createContainerQueries(db, opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS),
    ...createImages(db),
    ...createSinkStore(db),
    alertQueue: createAlertQueue(db),
    triage,
    maintenance: createMaintenance(db),
    baselines: createBaselines(db, triage),
    close: () => db.close(),
  };
}
