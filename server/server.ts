// Wires the store, the HTTP API and the agent stream onto one listening socket.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import path from 'node:path';
import { createApp } from './api/app.js';
import { createExportService } from './export/service.js';
import { loadOrCreateSigningKey } from './export/sign.js';
import { createConsole } from './web/console.js';
import type { SessionPolicy } from './web/session.js';
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
import type { AsyncIngest } from './store/ingest-thread.js';
import { capConnectionsPerAddress, createAddressLimiter } from './stream/address-limits.js';
import { createStream } from './stream/stream.js';
import type { ImageUploadResult, IngestPort, ObservationUploadResult, Store, Uploads } from './store/types.js';
import { isPostgresUrl, openPostgresStore, pgSinkKey } from './store/open.js';
import { QuicksandError } from '../shared/errors.js';
import { startCommandRelay } from './stream/command-relay.js';
import type { CommandRelay } from './stream/command-relay.js';
import { DEFAULT_SCHEDULE_LEASE_MS } from './schedules/schedules.js';

export interface ServerOptions {
  /** An SQLite file, or a postgres:// URL. */
  db: string;
  /** Where files beside a PostgreSQL database go (its sink key); `start` passes the data folder. */
  dataDir?: string;
  port: number;
  host: string;
  /** Stream upgrades admitted per second (bursts of `upgradeBurst`); over it: 503 + Retry-After. */
  upgradeRate?: number;
  upgradeBurst?: number;
  /** Stream upgrades admitted per second from one source address, before authentication. */
  upgradeRatePerAddress?: number;
  upgradeBurstPerAddress?: number;
  /** Enrolments admitted per second from one source address (bursts of `enrollBurst`). */
  enrollRatePerSec?: number;
  enrollBurst?: number;
  /** Sockets (HTTP and stream) one source address may hold at once. */
  maxConnectionsPerAddress?: number;
  /** A request's headers must arrive within this; the whole request (body included) within the other. */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Frames waiting for the ingest writer, in all; reports of one agent before its socket is paused. */
  maxIngestQueue?: number;
  maxPendingPerAgent?: number;
  /** Uploads (manifests, observations) parsed at once; more get 503 SERVER_BUSY. */
  maxUploads?: number;
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
  /** The console's session lifetimes and login throttle (default DEFAULT_SESSION_POLICY). */
  sessionPolicy?: SessionPolicy;
  /** False: no cron ticks (tests run the jobs through `schedules.run`). */
  schedules?: boolean;
  /** This process's name among the nodes on one database (default: hostname and a random suffix). */
  nodeId?: string;
  /** How often the node says its agent sessions are alive; a node silent for 3 of these lost them. */
  nodeHeartbeatMs?: number;
  /** How long the node that ran a scheduled job keeps them (renewed at every tick); another takes over after. */
  scheduleLeaseMs?: number;
}

export interface RunningServer {
  url: string;
  nodeId: string;
  store: Store;
  /** The ingest writer thread (its health; `kill` ends it as a crash would, and it restarts). */
  ingest: Pick<AsyncIngest, 'health' | 'kill'>;
  deliveries: DeliveryLoop;
  schedules: Schedules;
  close(): Promise<void>;
}

/** The paths the JSON API serves; the console serves the rest. */
export function isApiPath(pathname: string): boolean {
  return pathname.startsWith('/api/') || pathname === '/healthz' || pathname === '/metrics';
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const now = opts.now ?? (() => new Date());
  const staleAfterMs = opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const policy = opts.alertPolicy === undefined ? {} : { alertPolicy: opts.alertPolicy };
  const backend = isPostgresUrl(opts.db) ? await postgresBackend(opts.db, opts.dataDir, staleAfterMs, policy, opts.log) : sqliteBackend(opts.db, staleAfterMs, policy, opts.log);
  const { store, ingest } = backend;
  const nodeId = opts.nodeId ?? `${hostname()}-${randomUUID().slice(0, 8)}`;
  const metrics = createMetrics({ node: nodeId });
  const writer = createBatchWriter(ingest, {
    concurrency: backend.ingestConcurrency,
    ...(opts.maxIngestQueue === undefined ? {} : { maxQueued: opts.maxIngestQueue }),
    onDepth: (depth) => {
      metrics.ingestQueue = depth;
      if (depth > metrics.ingestQueuePeak) metrics.ingestQueuePeak = depth;
    },
    onBatch: (items, waitedMs, writeMs) => metrics.observeIngestBatch(items, waitedMs / 1000, writeMs / 1000),
  });
  // The relay needs the stream's sockets, the stream the relay's hooks: bound once both exist.
  let relay: CommandRelay | undefined;
  const stream = createStream({
    credentials: store,
    writer,
    metrics,
    now,
    maxFrameBytes: opts.maxFrameBytes,
    commandsOnHello: async (agentId, hello) => relay!.onHello(agentId, await store.baselines.commandsFor(agentId, hello.baseline, hello.image)),
    onOpened: (agentId) => relay?.opened(agentId),
    onClosed: (agentId) => relay?.closed(agentId),
    ...(opts.log === undefined ? {} : { log: opts.log }),
    upgradeLimiter: createRateLimiter(opts.upgradeRate ?? 500, opts.upgradeBurst ?? 1000, () => now().getTime()),
    addressLimiter: createAddressLimiter(opts.upgradeRatePerAddress ?? 50, opts.upgradeBurstPerAddress ?? 200, () => now().getTime()),
    ...(opts.maxPendingPerAgent === undefined ? {} : { maxPendingPerAgent: opts.maxPendingPerAgent }),
  });
  // The export signing key lives beside the database (on PostgreSQL in the data folder), made on first start.
  const exportService = createExportService(store, loadOrCreateSigningKey(backend.dataDir), staleAfterMs);
  relay = await startCommandRelay({
    cluster: store.cluster,
    nodeId,
    sockets: stream,
    now,
    ...(opts.nodeHeartbeatMs === undefined ? {} : { heartbeatMs: opts.nodeHeartbeatMs }),
    ...(opts.log === undefined ? {} : { log: opts.log }),
  });
  const app = createApp({
    store,
    exports: exportService,
    clock: now,
    metrics,
    stream: relay.channel,
    nodeId,
    health: () => nodeHealth(ingest, store),
    uploads: gatedUploads(backend.uploads, opts.maxUploads ?? 2),
    enrollLimiter: createAddressLimiter(opts.enrollRatePerSec ?? 0.2, opts.enrollBurst ?? 20, () => now().getTime()),
  });
  const web = createConsole({ store, clock: now, stream, ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }), ...(opts.sessionPolicy === undefined ? {} : { policy: opts.sessionPolicy }) });
  // The API has its paths; every other path is the console's.
  const route = (req: Request, env: unknown): Response | Promise<Response> => (isApiPath(new URL(req.url).pathname) ? app.fetch(req, env) : web.fetch(req, env));
  const deliveries = startDeliveryLoop({
    queue: store.alertQueue,
    sinks: () => store.listSinks(),
    fetch: opts.fetch ?? (fetch as FetchLike),
    now,
    // A held alert leaves when its window opens, not with the host's next report.
    beforeRound: async (at) => {
      const released = await store.heldAlerts.release(at);
      if (released.length > 0) opts.log?.(`released held alerts of ${released.length} host(s)`);
    },
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
    // With several nodes on one database the jobs run on one of them: the one holding the lease.
    lease: () => store.cluster.acquireLease('schedules', nodeId, now(), opts.scheduleLeaseMs ?? DEFAULT_SCHEDULE_LEASE_MS),
  });
  const headersTimeout = opts.headersTimeoutMs ?? 10_000;
  const server = createAdaptorServer({
    fetch: route,
    // Half-sent requests are dropped: the check runs this often (Node's default is 30 s).
    serverOptions: { headersTimeout, requestTimeout: opts.requestTimeoutMs ?? 10 * 60_000, connectionsCheckingInterval: Math.min(headersTimeout / 2, 1000) },
  }) as Server;
  capConnectionsPerAddress(server, opts.maxConnectionsPerAddress ?? 4096);
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
    nodeId,
    store,
    ingest,
    deliveries,
    schedules,
    async close() {
      await schedules.stop();
      // Another node runs the jobs from its next tick, not after the lease ran out.
      await store.cluster.releaseLease('schedules', nodeId).catch(() => undefined);
      await deliveries.stop();
      stream.close();
      await relay!.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await writer.drain();
      await ingest.close();
      await backend.closeUploads();
      await store.close();
    },
  };
}

/** A node is ready when its ingest writer can write and the database answers this node's connection. */
async function nodeHealth(ingest: Pick<AsyncIngest, 'health'>, store: Store): Promise<{ ok: boolean; problems: string[] }> {
  const [writer, database] = await Promise.all([
    ingest.health(),
    store.cluster.ping().then(
      () => null,
      (err: unknown) => `the database does not answer: ${err instanceof Error ? err.message : String(err)}`,
    ),
  ]);
  const problems = database === null ? writer.problems : [...writer.problems, database];
  return { ok: problems.length === 0, problems };
}

interface Backend {
  store: Store;
  ingest: Pick<AsyncIngest, 'health' | 'kill' | 'close'> & IngestPort;
  uploads: Uploads;
  closeUploads(): Promise<void>;
  /** Where the server's own files go (the export signing key): beside the SQLite file, or the data folder. */
  dataDir: string;
  /** Ingest batches written at once: SQLite has one writer; PostgreSQL writes on several connections. */
  ingestConcurrency: number;
}

/** SQLite: reports are written on their own thread, uploads on a second one; the API and enrolment use the main connection. */
function sqliteBackend(db: string, staleAfterMs: number, policy: { alertPolicy?: AlertPolicy }, log: ((line: string) => void) | undefined): Backend {
  const store = createSqliteStore(db, { staleAfterMs, ...policy });
  const ingest = startIngestThread({ sqlite: db }, { ...policy, ...(log === undefined ? {} : { log }) });
  // A manifest parsing for seconds never delays reports.
  const uploadThread = startIngestThread({ sqlite: db }, { ...(log === undefined ? {} : { log }) });
  return {
    store,
    ingest,
    uploads: {
      image: (body, now) => uploadThread.upload({ upload: 'image', body, now }) as Promise<ImageUploadResult>,
      observation: (req) => uploadThread.upload({ upload: 'observation', ...req }) as Promise<ObservationUploadResult>,
    },
    closeUploads: () => uploadThread.close(),
    dataDir: path.dirname(path.resolve(db)),
    ingestConcurrency: 1,
  };
}

/**
 * Batches in flight on PostgreSQL: each holds one connection of the writer thread's pool until it
 * commits (the API, logins and agent authentication use the main thread's pools). Two, not
 * four: one batch's statements run while the next one gathers what arrives, and every
 * transaction costs its ~11 round trips and a commit whatever it holds. At 2,100 reports/s on an
 * unshared machine two gave 10 to 11 items a batch (bench:ingest's ingest writer line) and p99
 * send→ack 126-161 ms; four gave 117-155 ms: no measurable difference in latency, slightly less
 * CPU per report (0.31-0.32 against 0.34-0.35 ms server, with the two statements fewer a batch).
 */
const PG_INGEST_CONCURRENCY = 2;

/**
 * PostgreSQL: reports are written on their own thread with its own pool (postgres/ingest-worker.ts);
 * the API, enrolment and uploads use the store's pool on the main thread.
 */
async function postgresBackend(url: string, dataDir: string | undefined, staleAfterMs: number, policy: { alertPolicy?: AlertPolicy }, log: ((line: string) => void) | undefined): Promise<Backend> {
  if (dataDir === undefined) throw new QuicksandError('USAGE', 'a server on PostgreSQL needs a data folder for its sink and signing keys (ServerOptions.dataDir)');
  const sinkKey = pgSinkKey(dataDir);
  const store = await openPostgresStore(url, sinkKey, { staleAfterMs, ...policy });
  const ingest = startIngestThread({ postgres: url, sinkKey, poolSize: PG_INGEST_CONCURRENCY }, { ...policy, ...(log === undefined ? {} : { log }) });
  return {
    store,
    ingest,
    uploads: store.uploads,
    closeUploads: async () => {},
    dataDir,
    ingestConcurrency: PG_INGEST_CONCURRENCY,
  };
}

/** Uploads, at most `max` at once: each holds its body and its parse in memory. */
function gatedUploads(uploads: Uploads, max: number): Uploads {
  let busy = 0;
  const gate = async <T>(run: () => Promise<unknown>): Promise<T> => {
    if (busy >= max) throw new QuicksandError('SERVER_BUSY', `${max} uploads are being processed: send this again in a minute`);
    busy++;
    try {
      return (await run()) as T;
    } finally {
      busy--;
    }
  };
  return {
    image: (body, now) => gate(() => uploads.image(body, now)),
    observation: (req) => gate(() => uploads.observation(req)),
  };
}
