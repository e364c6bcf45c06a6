import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { IngestItem, IngestPort } from './types.js';
import type { AlertPolicy } from '../alerts/policy.js';
import type { WorkerRequest, WorkerResponse } from './ingest-worker.js';

export interface IngestThreadOptions {
  /** The alert policy ingest plans with (throttle, dedup memory); default DEFAULT_ALERT_POLICY. */
  alertPolicy?: AlertPolicy;
}

/** Starts the writer thread on the (already migrated) database file. */
export function startIngestThread(file: string, opts: IngestThreadOptions = {}): IngestPort {
  const self = new URL(import.meta.url);
  // From the sources (tests, tsx) the worker is TypeScript too: it registers tsx's loader first,
  // since `--import` cannot be given to a worker. The built server loads plain JS.
  const fromSource = self.pathname.endsWith('.ts');
  const entry = new URL(`./ingest-worker.${fromSource ? 'ts' : 'js'}`, self);
  const worker = fromSource
    ? new Worker(
        `import(${JSON.stringify(pathToFileURL(createRequire(self).resolve('tsx/esm/api')).href)})` +
          `.then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`,
        { eval: true, workerData: { file, alertPolicy: opts.alertPolicy } },
      )
    : new Worker(entry, { workerData: { file, alertPolicy: opts.alertPolicy } });
  let nextId = 1;
  const waiting = new Map<number, { resolve: (r: WorkerResponse) => void; reject: (e: Error) => void }>();
  worker.on('message', (msg: WorkerResponse) => {
    const w = waiting.get(msg.id);
    waiting.delete(msg.id);
    w?.resolve(msg);
  });
  let dead: Error | null = null;
  const failAll = (err: Error): void => {
    dead ??= err;
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  worker.on('error', failAll);
  worker.on('exit', (code) => failAll(new Error(`ingest writer thread exited (${code})`)));

  const call = (req: Omit<WorkerRequest, 'id'>): Promise<WorkerResponse> =>
    new Promise((resolve, reject) => {
      if (dead !== null) return reject(dead);
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      worker.postMessage({ ...req, id });
    });

  return {
    async ingestBatch(items) {
      const res = await call({ items: items as IngestItem[] });
      if ('error' in res) throw new Error(res.error);
      if (!('results' in res)) throw new Error('unexpected answer from the writer thread');
      return res.results;
    },
    async close() {
      await call({ close: true }).catch(() => undefined);
      await worker.terminate();
    },
  };
}
