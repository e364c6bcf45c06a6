// The PostgreSQL ingest writer's thread: its own small pool runs each batch's transaction, so the
// pg driver's work (encoding the batch, writing it to the socket, parsing the answers) and the
// alert planning happen beside the main thread, which keeps to the agents' sockets and frames.
// On one thread at 2,100 reports/s the main thread was ~85% busy and any disturbance (an
// autovacuum, a GC) left a backlog that drained slowly. The thread is to the database one more
// client, as another node would be: nothing it caches must agree with the main thread's.
import { parentPort, workerData } from 'node:worker_threads';
import type { AlertPolicy } from '../../alerts/policy.js';
import type { WorkerRequest, WorkerResponse } from '../ingest-worker.js';
import { createPgAlertQueue, createPgSinkStore } from './alert-queue.js';
import { createPgAlerting } from './alerting.js';
import { openPostgres, writeProblem } from './db.js';
import { createPgIngest } from './ingest.js';

export interface PgIngestWorkerData {
  postgres: string;
  /** The key sink secrets are sealed with: a batch reads its sinks to plan deliveries. */
  sinkKey: Uint8Array;
  /** Connections: one per batch in flight. */
  poolSize: number;
  alertPolicy?: AlertPolicy;
}

const data = workerData as PgIngestWorkerData;
// Unreachable at start: the thread exits and ingest-thread.ts starts it again, backing off.
const db = await openPostgres(data.postgres, { max: data.poolSize, migrate: false });
const alerting = createPgAlerting(createPgAlertQueue(db), createPgSinkStore(db, Buffer.from(data.sinkKey)), data.alertPolicy);
const ingest = createPgIngest(db, alerting);

async function answer(msg: WorkerRequest): Promise<WorkerResponse> {
  if ('close' in msg) {
    // Closing: a pool that cannot end cleanly (the database gone) is ended with the thread.
    await db.close().catch(() => {});
    return { id: msg.id, closed: true };
  }
  if ('probe' in msg) return { id: msg.id, probe: (await writeProblem(db)) ?? 'ok' };
  if ('upload' in msg) return { id: msg.id, error: 'uploads on PostgreSQL run on the main pool, not on the ingest thread' };
  try {
    return { id: msg.id, results: await ingest.ingestBatch(msg.items) };
  } catch (err) {
    return { id: msg.id, error: (err as Error).message };
  }
}

// Batches run concurrently (one per pooled connection); each answer goes back when it commits.
parentPort!.on('message', (msg: WorkerRequest) => {
  void answer(msg).then((res) => parentPort!.postMessage(res));
});
