// The ingest writer's thread: owns one write connection and runs each batch in one transaction.
// Living off the main thread, a slow fsync never stalls the sockets, and a second core parses
// frames while this one writes.
import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase } from './db.js';
import { createIngest } from './ingest.js';
import { createAlerting } from './alerting.js';
import type { AlertPolicy } from '../alerts/policy.js';
import type { IngestItem, IngestResult } from './types.js';

export type WorkerRequest = { id: number; items: IngestItem[] } | { id: number; close: true };
export type WorkerResponse = { id: number; results: IngestResult[] } | { id: number; error: string } | { id: number; closed: true };

const data = workerData as { file: string; alertPolicy?: AlertPolicy };
const db = openDatabase(data.file);
const ingest = createIngest(db, createAlerting(db, data.alertPolicy));
parentPort!.on('message', (msg: WorkerRequest) => {
  if ('close' in msg) {
    db.close();
    parentPort!.postMessage({ id: msg.id, closed: true } satisfies WorkerResponse);
    return;
  }
  try {
    parentPort!.postMessage({ id: msg.id, results: ingest.ingestBatch(msg.items) } satisfies WorkerResponse);
  } catch (err) {
    parentPort!.postMessage({ id: msg.id, error: (err as Error).message } satisfies WorkerResponse);
  }
});
