// The ingest writer's thread: owns one write connection and runs each batch in one transaction.
// Living off the main thread, a slow fsync never stalls the sockets, and a second core parses
// frames while this one writes.
import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase } from './db.js';
import { createIngest } from './ingest.js';
import { createAlerting } from './alerting.js';
import type { AlertPolicy } from '../alerts/policy.js';
import type { IngestItem, IngestResult } from './types.js';
import { createImages } from './images.js';
import { createBaselines } from './baselines.js';
import { createTriage } from './triage.js';
import { acceptManifestUpload, acceptObservationUpload } from './uploads.js';
import { isQuicksandError } from '../../shared/errors.js';

export type UploadRequest = { upload: 'image'; body: Uint8Array; now: Date } | { upload: 'observation'; hostId: string; version: number; body: Uint8Array; now: Date };
export type WorkerRequest = { id: number; items: IngestItem[] } | { id: number; close: true } | { id: number; probe: true } | ({ id: number } & UploadRequest);
export type WorkerResponse = { id: number; results: IngestResult[] } | { id: number; error: string } | { id: number; closed: true } | { id: number; probe: string } | { id: number; uploaded: unknown } | { id: number; error: string; code: string };

const data = workerData as { file: string; alertPolicy?: AlertPolicy };
const db = openDatabase(data.file);
const alerting = createAlerting(db, data.alertPolicy);
const ingest = createIngest(db, alerting);
let uploadStores: { images: ReturnType<typeof createImages>; baselines: ReturnType<typeof createBaselines> } | undefined;
const uploads = (): NonNullable<typeof uploadStores> => (uploadStores ??= { images: createImages(db), baselines: createBaselines(db, createTriage(db, alerting)) });
parentPort!.on('message', (msg: WorkerRequest) => {
  if ('close' in msg) {
    db.close();
    parentPort!.postMessage({ id: msg.id, closed: true } satisfies WorkerResponse);
    return;
  }
  if ('upload' in msg) {
    try {
      const uploaded = msg.upload === 'image' ? acceptManifestUpload(uploads().images, msg.body, msg.now) : acceptObservationUpload(uploads().baselines, msg);
      parentPort!.postMessage({ id: msg.id, uploaded } satisfies WorkerResponse);
    } catch (err) {
      parentPort!.postMessage({ id: msg.id, error: (err as Error).message, code: isQuicksandError(err) ? err.code : 'INTERNAL' } satisfies WorkerResponse);
    }
    return;
  }
  if ('probe' in msg) {
    parentPort!.postMessage({ id: msg.id, probe: probeWrite() } satisfies WorkerResponse);
    return;
  }
  try {
    parentPort!.postMessage({ id: msg.id, results: ingest.ingestBatch(msg.items) } satisfies WorkerResponse);
  } catch (err) {
    parentPort!.postMessage({ id: msg.id, error: (err as Error).message } satisfies WorkerResponse);
  }
});

/** 'ok' when this connection can take the write lock now; else why not. Waits 200 ms at most. */
function probeWrite(): string {
  db.pragma('busy_timeout = 200');
  try {
    db.exec('BEGIN IMMEDIATE');
    db.exec('ROLLBACK');
    return 'ok';
  } catch (err) {
    return (err as Error).message;
  } finally {
    db.pragma('busy_timeout = 5000');
  }
}
