// The agent daemon: the monitor decides when the host is looked at (realtime event reports,
// scheduled full scans with per-host jitter, the server's `scan-now`); the daemon hands every
// report to the outbox and wakes the transport. One scheduler: the monitor's.
import type { Manifest } from '../../shared/manifest.js';
import type { ManifestIndex } from '../manifest/index-db.js';
import type { Report } from '../../shared/report.js';
import { startMonitor } from './monitor.js';
import type { Monitor, MonitorOptions } from './monitor.js';
import type { Outbox } from '../deliver/outbox.js';
import type { Root } from '../root.js';
import type { Transport } from '../deliver/transport.js';
import { stampTicket } from '../deliver/ticket.js';

/** `M`: a manifest in memory, or the daemon's index of one (see index-db.ts). */
export interface DaemonOptions<M extends Manifest | ManifestIndex = Manifest> {
  root: Root;
  manifest: M;
  outbox: Outbox;
  transport: Transport;
  /** The agent id: picks this host's slot in the hour for the default full-scan schedule. */
  hostId: string;
  /** How a full scan is made (the CLI passes one that goes through the stat cache). */
  scan: (root: Root, manifest: M) => Promise<Report>;
  /** The hostname every report names, event reports of the realtime watch included; default the OS's. */
  hostname?: string;
  /** node-cron expression (5 fields, or 6 with seconds); default hourly at this host's minute. */
  schedule?: string;
  /** False: no realtime watch, scheduled scans only (the reports then say `watch: degraded`). */
  realtime?: boolean;
  watch?: MonitorOptions['watch'];
  log: (line: string) => void;
  now?: () => Date;
  /** The change ticket declared on the host now, stamped on every report queued (none: undefined). */
  ticket?: () => string | undefined;
  /** Starts the monitor; tests may pass their own. */
  startMonitor?: (opts: MonitorOptions<M>) => Monitor;
  /**
   * Called once no report came for `quietMs` after one did (default 5 s): the daemon gives back
   * the memory its last burst of work took (see compact.ts).
   */
  whenQuiet?: () => void;
  quietMs?: number;
}

export interface Daemon<M extends Manifest | ManifestIndex = Manifest> {
  readonly schedule: string;
  /** Resolves once the watch is up (or gave up) and the schedule runs. */
  readonly ready: Promise<void>;
  /** Runs a full scan now, between event batches. */
  requestScan(reason: string): Promise<void>;
  /** Runs `fn` between event batches and scans (an observation of the whole root, say). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Scans against `manifest` from now on (a re-baseline): the watch and the schedule start again
   * over it, and a full scan against it runs at once.
   */
  replaceManifest(manifest: M): Promise<void>;
  stop(): Promise<void>;
}

export function startDaemon<M extends Manifest | ManifestIndex = Manifest>(opts: DaemonOptions<M>): Daemon<M> {
  const now = opts.now ?? (() => new Date());
  let stopped = false;
  let lastWatch: string | null = null;
  let quietTimer: NodeJS.Timeout | undefined;
  const settle = (): void => {
    if (opts.whenQuiet === undefined) return;
    clearTimeout(quietTimer);
    quietTimer = setTimeout(opts.whenQuiet, opts.quietMs ?? 5_000).unref();
  };

  const onReport = (report: Report): void => {
    if (stopped) return;
    const kind = report.scan === 'event' ? 'event' : 'full';
    const entry = opts.outbox.enqueue(stampTicket(report, opts.ticket?.()), kind, now());
    const watch = report.watch === undefined ? '' : report.watch.state === 'ok' ? '; watch ok' : `; watch degraded: ${report.watch.reason ?? 'no reason given'}`;
    opts.log(`${kind} scan: ${report.summary.status}, ${report.summary.findings} findings; report ${entry.seq} queued, ${opts.outbox.depth()} waiting${watch}`);
    // Say it once when the watch state changes, not on every report.
    const state = report.watch === undefined ? null : `${report.watch.state}:${report.watch.reason ?? ''}`;
    if (state !== null && state !== lastWatch && report.watch?.state === 'degraded') opts.log(`realtime watch degraded (${report.watch.reason ?? 'no reason given'}); scheduled full scans go on`);
    if (state !== null) lastWatch = state;
    opts.transport.notify();
    settle();
  };

  const start = (manifest: M): Monitor => (opts.startMonitor ?? startMonitor<M>)({
    root: opts.root,
    manifest,
    hostId: opts.hostId,
    scan: opts.scan,
    onReport,
    // A failed scan is logged and retried at the next tick; the daemon stays up.
    onError: (err) => opts.log(`scan failed: ${err instanceof Error ? err.message : String(err)}`),
    onHold: opts.log,
    ...(opts.schedule === undefined ? {} : { schedule: opts.schedule }),
    ...(opts.realtime === undefined ? {} : { realtime: opts.realtime }),
    ...(opts.watch === undefined ? {} : { watch: opts.watch }),
    ...(opts.hostname === undefined ? {} : { hostname: opts.hostname }),
  });
  let monitor = start(opts.manifest);
  opts.transport.start();

  return {
    schedule: monitor.schedule,
    ready: monitor.ready,
    async requestScan(reason) {
      if (stopped) return;
      opts.log(`full scan requested (${reason})`);
      await monitor.fullScan().then(
        () => undefined,
        (err: unknown) => opts.log(`scan (${reason}) failed: ${err instanceof Error ? err.message : String(err)}`),
      );
    },
    exclusive: (fn) => monitor.exclusive(fn),
    async replaceManifest(manifest) {
      if (stopped) return;
      // The old watch and schedule stop; the new monitor scans against the new manifest at once.
      await monitor.close();
      // stop() may have come while the old monitor was closing: it closed that one, not this.
      if (stopped) return;
      monitor = start(manifest);
      await monitor.ready;
    },
    async stop() {
      stopped = true;
      clearTimeout(quietTimer);
      await monitor.close();
      await opts.transport.stop();
    },
  };
}
