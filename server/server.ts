// Wires the store, the HTTP API and the agent stream onto one listening socket.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { createApp } from './api/app.js';
import { createBatchWriter } from './stream/batch-writer.js';
import type { FetchLike } from './alerts/http.js';
import type { AlertPolicy, RetrySchedule } from './alerts/policy.js';
import { startDeliveryLoop } from './alerts/delivery-loop.js';
import type { DeliveryLoop } from './alerts/delivery-loop.js';
import { startSchedules } from './schedules/schedules.js';
import type { ScheduleSettings, Schedules } from './schedules/schedules.js';
import { createMetrics } from './metrics.js';
import { createRateLimiter } from './stream/rate-limit.js';
import { DEFAULT_STALE_AFTER_MS, createSqliteStore } from './store/sqlite-store.js';
import { startIngestThread } from './store/ingest-thread.js';
import { createStream } from './stream/stream.js';
import type { Store } from './store/types.js';

export interface ServerOptions {
  db: string;
  port: number;
  host: string;
  /** Stream upgrades admitted per second (bursts of `upgradeBurst`); over it: 503 + Retry-After. */
  upgradeRate?: number;
  upgradeBurst?: number;
  maxFrameBytes?: number;
  staleAfterMs?: number;
  now?: () => Date;
  /** How alerts are sent (default the global fetch) and retried; how often the queue is looked at. */
  fetch?: FetchLike;
  alertRetry?: RetrySchedule;
  /** When alerts are raised: the per-host throttle and how long an alerted change is remembered. */
  alertPolicy?: AlertPolicy;
  deliveryIntervalMs?: number;
  deliveryConcurrency?: number;
  log?: (line: string) => void;
  /** History kept, in days (0: for ever); the sink of the daily digest; the jobs' cron expressions. */
  retentionDays?: number;
  digestSinkId?: string;
  scheduleCron?: ScheduleSettings['cron'];
  /** False: no cron ticks (tests run the jobs through `schedules.run`). */
  schedules?: boolean;
}

export interface RunningServer {
  url: string;
  store: Store;
  deliveries: DeliveryLoop;
  schedules: Schedules;
  close(): Promise<void>;
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const now = opts.now ?? (() => new Date());
  const staleAfterMs = opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const store = createSqliteStore(opts.db, { staleAfterMs, ...(opts.alertPolicy === undefined ? {} : { alertPolicy: opts.alertPolicy }) });
  const metrics = createMetrics();
  // Reports are written on their own thread; the API and enrolment use the main connection.
  const ingest = startIngestThread(opts.db, opts.alertPolicy === undefined ? {} : { alertPolicy: opts.alertPolicy });
  const writer = createBatchWriter(ingest);
  const stream = createStream({
    credentials: store,
    writer,
    metrics,
    now,
    maxFrameBytes: opts.maxFrameBytes,
    commandsOnHello: (agentId, hello) => store.baselines.commandsFor(agentId, hello.baseline, hello.image),
    upgradeLimiter: createRateLimiter(opts.upgradeRate ?? 500, opts.upgradeBurst ?? 1000, () => now().getTime()),
  });
  const app = createApp({ store, clock: now, metrics, stream });
  const deliveries = startDeliveryLoop({
    queue: store.alertQueue,
    sinks: () => store.listSinks(),
    fetch: opts.fetch ?? (fetch as FetchLike),
    now,
    ...(opts.deliveryIntervalMs === undefined ? {} : { intervalMs: opts.deliveryIntervalMs }),
    ...(opts.deliveryConcurrency === undefined ? {} : { concurrency: opts.deliveryConcurrency }),
    ...(opts.alertRetry === undefined ? {} : { retry: opts.alertRetry }),
    ...(opts.log === undefined ? {} : { log: opts.log }),
  });
  const schedules = startSchedules({
    store,
    now,
    settings: {
      staleAfterMs,
      retentionDays: opts.retentionDays ?? 0,
      ...(opts.digestSinkId === undefined ? {} : { digestSinkId: opts.digestSinkId }),
      ...(opts.scheduleCron === undefined ? {} : { cron: opts.scheduleCron }),
    },
    ...(opts.log === undefined ? {} : { log: opts.log }),
    cron: opts.schedules !== false,
  });
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  server.on('upgrade', (req, socket, head) => stream.handleUpgrade(req, socket, head));
  // Thousands of agents keep their connections; the defaults are tuned for browsers.
  server.maxConnections = 100_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    store,
    deliveries,
    schedules,
    async close() {
      await schedules.stop();
      await deliveries.stop();
      stream.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await writer.drain();
      await ingest.close();
      store.close();
    },
  };
}
