// The alert delivery loop: on its own timer, apart from ingest, sends what the queue says is due
// with the real fetch, at most `concurrency` at a time, and records every attempt. A sink that
// hangs costs one slot for its timeout, never a report.
import type { AlertSink } from '../../shared/alerts.js';
import type { FetchLike } from './http.js';
import type { RetrySchedule } from './policy.js';
import { deliverDue } from './queue.js';
import type { AlertQueueStore, DeliveryAttempt } from './queue.js';

export interface DeliveryLoopOptions {
  queue: AlertQueueStore;
  /** The sinks as configured now (read on every round: a removed sink gives its deliveries up). */
  sinks: () => readonly AlertSink[];
  fetch: FetchLike;
  now: () => Date;
  intervalMs?: number;
  /** Deliveries in flight at once. */
  concurrency?: number;
  retry?: RetrySchedule;
  log?: (line: string) => void;
  onAttempt?: (attempt: DeliveryAttempt) => void;
}

export interface DeliveryLoop {
  /** One round now (rounds never overlap); resolves when it is done. */
  tick(): Promise<DeliveryAttempt[]>;
  stop(): Promise<void>;
}

export function startDeliveryLoop(opts: DeliveryLoopOptions): DeliveryLoop {
  const intervalMs = opts.intervalMs ?? 1000;
  const limit = opts.concurrency ?? 8;
  let stopped = false;
  let running: Promise<DeliveryAttempt[]> | null = null;
  let timer: NodeJS.Timeout | undefined;

  async function round(): Promise<DeliveryAttempt[]> {
    const sinks = new Map(opts.sinks().map((s) => [s.id, s] as const));
    const all: DeliveryAttempt[] = [];
    // A full batch means more may be due: go on until the queue has no more for now.
    for (;;) {
      const done = await deliverDue({ queue: opts.queue, sinks, fetch: opts.fetch, now: opts.now, limit, ...(opts.retry ? { retry: opts.retry } : {}) });
      for (const a of done) {
        opts.onAttempt?.(a);
        if (!a.outcome.ok) opts.log?.(`alert delivery ${a.deliveryId} to ${a.sinkId}, attempt ${a.attempt}: ${a.outcome.error} (${a.result})`);
      }
      all.push(...done);
      if (done.length < limit || stopped) return all;
    }
  }

  function tick(): Promise<DeliveryAttempt[]> {
    if (running) return running.then(() => tick());
    running = round().finally(() => {
      running = null;
    });
    return running;
  }

  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      tick()
        .catch((err: unknown) => opts.log?.(`alert delivery round failed: ${err instanceof Error ? err.message : String(err)}`))
        .finally(schedule);
    }, intervalMs);
    timer.unref();
  };
  schedule();

  return {
    tick,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => undefined);
    },
  };
}
