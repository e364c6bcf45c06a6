import type { Manifest } from '../../shared/manifest.js';
import type { Report, WatchState } from '../../shared/report.js';
import { scanRoot } from '../diff/scan.js';
import { scheduleFullScans } from './schedule.js';
import type { FullScanSchedule } from './schedule.js';
import type { Root } from '../root.js';
import { startWatch } from './watch.js';
import type { RealtimeWatch, WatchOptions } from './watch.js';

export interface MonitorOptions {
  root: Root;
  manifest: Manifest;
  /** Stable id of this host (the agent id once enrolled): picks its slot in the hour. */
  hostId: string;
  hostname?: string;
  /** How a full scan is made; default `scanRoot` without a stat cache. */
  scan?: (root: Root, manifest: Manifest) => Promise<Report>;
  /** Every report, event and full, in the order they were made. The daemon puts them in its outbox. */
  onReport: (report: Report) => void | Promise<void>;
  /** A full scan that failed; the schedule goes on. */
  onError: (err: unknown) => void;
  /** node-cron expression for full scans; default hourly at this host's jittered minute. */
  schedule?: string;
  /** False: no realtime watch at all, only the schedule (watch state then reads degraded). */
  realtime?: boolean;
  /**
   * One full scan as soon as the watch is up (default true): whatever changed while the agent
   * was not running (a restart, an upgrade of the agent) is reported without waiting an hour.
   */
  initialScan?: boolean;
  watch?: Pick<WatchOptions, 'debounceMs' | 'maxWaitMs' | 'maxWatchedDirs' | 'packageDatabases' | 'collectors' | 'createWatcher'>;
}

export interface Monitor {
  /** Resolves when the watch is set up (or has given up) and the schedule runs. */
  readonly ready: Promise<void>;
  readonly schedule: string;
  watchState(): WatchState;
  /** One full scan now, queued between event batches. */
  fullScan(): Promise<Report>;
  /** Runs `fn` between event batches, as a full scan does (a walk of its own, say). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * Decides *when* the host is looked at, never *what* is found: realtime event reports from the
 * watcher, full scans on a schedule (they catch whatever the watcher missed), and one full scan
 * right away when the watcher gives up, so the gap between its last event and the next scheduled
 * scan is covered too. Every full scan says whether realtime watching is on; a watcher that gave
 * up is tried again at each scheduled scan.
 */
export function startMonitor(opts: MonitorOptions): Monitor {
  let watch: RealtimeWatch | null = null;
  let offline: WatchState = { state: 'degraded', reason: 'realtime watching is turned off; only scheduled full scans run' };
  let closed = false;

  const runFull = async (): Promise<Report> => {
    const report = opts.scan
      ? await opts.scan(opts.root, opts.manifest)
      : await scanRoot(opts.root, opts.manifest, opts.hostname === undefined ? {} : { hostname: opts.hostname });
    const full: Report = { ...report, scan: 'full', watch: watch?.state() ?? offline };
    if (!closed) await opts.onReport(full);
    return full;
  };
  const fullScan = (): Promise<Report> => (watch ? watch.exclusive(runFull) : runFull());

  // While the schedule itself tries watching again, a failure is covered by the scan it runs next.
  let rewatching = false;
  const startRealtime = (): RealtimeWatch =>
    startWatch({
      ...opts.watch,
      root: opts.root,
      manifest: opts.manifest,
      ...(opts.hostname === undefined ? {} : { hostname: opts.hostname }),
      onReport: opts.onReport,
      onError: opts.onError,
      onDegraded: () => {
        if (!rewatching) fullScan().catch(opts.onError);
      },
    });
  if (opts.realtime !== false) watch = startRealtime();

  const scheduled: FullScanSchedule = scheduleFullScans({
    hostId: opts.hostId,
    ...(opts.schedule === undefined ? {} : { expression: opts.schedule }),
    task: async () => {
      // A degraded watcher is tried again before each scheduled scan: the admin may have raised
      // fs.inotify.max_user_watches, the folder that failed may be readable again. The scan that
      // follows covers whatever happened while nothing watched.
      if (watch && watch.state().state === 'degraded' && !closed) {
        rewatching = true;
        try {
          await watch.close();
          watch = startRealtime();
          await watch.ready;
        } finally {
          rewatching = false;
        }
      }
      await fullScan();
    },
    onError: opts.onError,
  });

  const ready = watch ? watch.ready : Promise.resolve();
  if (opts.initialScan !== false) {
    // A watcher that gave up during its crawl already had its full scan (onDegraded).
    void ready.then(() => (closed || watch?.state().state === 'degraded' ? undefined : fullScan())).catch(opts.onError);
  }

  return {
    ready,
    schedule: scheduled.expression,
    watchState: () => watch?.state() ?? offline,
    fullScan,
    exclusive: (fn) => (watch ? watch.exclusive(fn) : fn()),
    close: async () => {
      closed = true;
      await scheduled.stop();
      await watch?.close();
      offline = { state: 'degraded', reason: 'the agent stopped watching' };
    },
  };
}
