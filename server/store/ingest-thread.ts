import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { IngestHealth, IngestItem, IngestPort } from './types.js';
import type { AlertPolicy } from '../alerts/policy.js';
import type { UploadRequest, WorkerRequest, WorkerResponse } from './ingest-worker.js';
import type { PgIngestWorkerData } from './postgres/ingest-worker.js';
import { QuicksandError } from '../../shared/errors.js';
import type { ErrorCode } from '../../shared/errors.js';

/** The writer thread's port: ingest and health as every backend has them, and its own extras. */
export interface AsyncIngest extends IngestPort {
  /** Parses and stores one upload on the thread; the body's buffer is moved there, not copied. */
  upload(req: UploadRequest): Promise<unknown>;
  /** Ends the writer thread as a crash would (tests; it is restarted like after one). */
  kill(): Promise<void>;
}

export interface IngestThreadOptions {
  /** The alert policy ingest plans with (throttle, dedup memory); default DEFAULT_ALERT_POLICY. */
  alertPolicy?: AlertPolicy;
  /** Told when the thread died and when it was started again. */
  log?: (line: string) => void;
}

/** How long /healthz waits for the writer thread's answer before it says not ready. */
const HEALTH_TIMEOUT_MS = 2000;
/** Restarts after a crash wait this long, doubling while the thread keeps dying, up to 5 s. */
const RESTART_DELAY_MS = 100;

/** What the writer thread writes to: the SQLite file, or a PostgreSQL database (postgres/ingest-worker.ts). */
export type IngestTarget = { sqlite: string } | { postgres: string; sinkKey: Buffer; poolSize: number };

/**
 * Starts the writer thread on the (already migrated) database, and starts it again when it
 * dies: the batch it held fails (its agents send again), the next one goes to the new thread.
 */
export function startIngestThread(target: IngestTarget, opts: IngestThreadOptions = {}): AsyncIngest {
  const self = new URL(import.meta.url);
  // From the sources (tests, tsx) the worker is TypeScript too: it registers tsx's loader first,
  // since `--import` cannot be given to a worker. The built server loads plain JS.
  const fromSource = self.pathname.endsWith('.ts');
  const entry = new URL(`./${'sqlite' in target ? '' : 'postgres/'}ingest-worker.${fromSource ? 'ts' : 'js'}`, self);
  const workerData =
    'sqlite' in target
      ? { file: target.sqlite, alertPolicy: opts.alertPolicy }
      : ({ postgres: target.postgres, sinkKey: new Uint8Array(target.sinkKey), poolSize: target.poolSize, alertPolicy: opts.alertPolicy } satisfies PgIngestWorkerData);
  const spawn = (): Worker =>
    fromSource
      ? new Worker(
          `import(${JSON.stringify(pathToFileURL(createRequire(self).resolve('tsx/esm/api')).href)})` +
            `.then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`,
          { eval: true, workerData },
        )
      : new Worker(entry, { workerData });

  let nextId = 1;
  const waiting = new Map<number, { resolve: (r: WorkerResponse) => void; reject: (e: Error) => void }>();
  let worker: Worker | null = null;
  let down: Error | null = null;
  let closing = false;
  let delay = RESTART_DELAY_MS;
  let restartTimer: NodeJS.Timeout | undefined;

  const failAll = (err: Error): void => {
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  const start = (): void => {
    const w = spawn();
    worker = w;
    down = null;
    w.on('message', (msg: WorkerResponse) => {
      delay = RESTART_DELAY_MS;
      const entry = waiting.get(msg.id);
      waiting.delete(msg.id);
      entry?.resolve(msg);
    });
    w.on('error', (err) => opts.log?.(`ingest writer thread failed: ${err.message}`));
    w.on('exit', (code) => {
      if (worker !== w) return;
      worker = null;
      down = new Error(`ingest writer thread exited (${code})`);
      failAll(down);
      if (closing) return;
      opts.log?.(`ingest writer thread exited (${code}); starting it again in ${delay} ms`);
      restartTimer = setTimeout(start, delay);
      delay = Math.min(delay * 2, 5000);
    });
  };
  start();

  const call = (req: Omit<WorkerRequest, 'id'>, transfer: ArrayBuffer[] = []): Promise<WorkerResponse> =>
    new Promise((resolve, reject) => {
      if (worker === null) return reject(down ?? new Error('ingest writer thread is not running'));
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      worker.postMessage({ ...req, id } as WorkerRequest, transfer);
    });

  return {
    async ingestBatch(items) {
      const res = await call({ items: items as IngestItem[] });
      if ('error' in res) throw new Error(res.error);
      if (!('results' in res)) throw new Error('unexpected answer from the writer thread');
      return res.results;
    },
    async health() {
      if (worker === null) return { ok: false, problems: [`ingest worker is down (${down?.message ?? 'not started'}); restarting`] };
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<IngestHealth>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, problems: [`ingest worker did not answer within ${HEALTH_TIMEOUT_MS} ms`] }), HEALTH_TIMEOUT_MS);
      });
      const probe = call({ probe: true }).then(
        (res): IngestHealth => ('probe' in res && res.probe === 'ok' ? { ok: true, problems: [] } : { ok: false, problems: [`database cannot be written: ${'probe' in res ? res.probe : 'no answer'}`] }),
        (err: Error): IngestHealth => ({ ok: false, problems: [`ingest worker: ${err.message}`] }),
      );
      try {
        return await Promise.race([probe, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async upload(req) {
      const whole = req.body.byteOffset === 0 && req.body.byteLength === req.body.buffer.byteLength && req.body.buffer instanceof ArrayBuffer;
      const res = await call(req as Omit<WorkerRequest, 'id'>, whole ? [req.body.buffer as ArrayBuffer] : []);
      if ('code' in res) throw new QuicksandError(res.code as ErrorCode, res.error);
      if (!('uploaded' in res)) throw new Error('unexpected answer from the writer thread');
      return res.uploaded;
    },
    async kill() {
      await worker?.terminate();
    },
    async close() {
      closing = true;
      clearTimeout(restartTimer);
      const w = worker;
      if (w === null) return;
      await call({ close: true }).catch(() => undefined);
      await w.terminate();
    },
  };
}
