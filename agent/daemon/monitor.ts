import type { Manifest } from '../../shared/manifest.js';
import { isManifestIndex } from '../manifest/index-db.js';
import type { ManifestIndex } from '../manifest/index-db.js';
import { readManifestFile } from '../manifest/io.js';
import type { Report, WatchState } from '../../shared/report.js';
import { scanRoot } from '../diff/scan.js';
import { scheduleFullScans } from './schedule.js';
import type { FullScanSchedule } from './schedule.js';
import type { Root } from '../root.js';
import { startWatch } from './watch.js';
import { runningTransaction } from './package-transaction.js';
import type { RealtimeWatch, WatchOptions } from './watch.js';

export interface MonitorOptions<M extends Manifest | ManifestIndex = Manifest> {
  root: Root;
  /** The daemon passes an index (no record held in memory); see index-db.ts. */
  manifest: M;
  /** Stable id of this host (the agent id once enrolled): picks its slot in the hour. */
  hostId: string;
  hostname?: string;
  /** How a full scan is made; default `scanRoot` without a stat cache. */
  scan?: (root: Root, manifest: M) => Promise<Report>;
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
  /**
   * Event reports are held while a package manager transaction runs on the root (false: never):
   * `probe` says which one runs (default: its lock held, see package-transaction.ts), checked
   * every `pollMs` until it ends, at most `maxHoldMs`.
   */
  packageTransactions?: false | { probe?: () => Promise<string | null>; pollMs?: number; maxHoldMs?: number };
  /** Says when reports are held and why (the daemon logs it). */
  onHold?: (line: string) => void;
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
export function startMonitor<M extends Manifest | ManifestIndex = Manifest>(opts: MonitorOptions<M>): Monitor {
  let watch: RealtimeWatch | null = null;
  let offline: WatchState = { state: 'degraded', reason: 'realtime watching is turned off; only scheduled full scans run' };
  let closed = false;

  const runFull = async (): Promise<Report> => {
    const report = opts.scan
      ? await opts.scan(opts.root, opts.manifest)
      : await scanRoot(opts.root, isManifestIndex(opts.manifest) ? await readManifestFile(opts.manifest.file) : opts.manifest, opts.hostname === undefined ? {} : { hostname: opts.hostname });
    const full: Report = { ...report, scan: 'full', watch: watch?.state() ?? offline };
    if (!closed) await opts.onReport(full);
    return full;
  };
  const fullScan = (): Promise<Report> => (watch ? watch.exclusive(runFull) : runFull());
  const onEvent = opts.packageTransactions === false ? opts.onReport : holdDuringTransactions(opts, fullScan, () => closed);

  // While the schedule itself tries watching again, a failure is covered by the scan it runs next.
  let rewatching = false;
  const startRealtime = (): RealtimeWatch =>
    startWatch({
      ...opts.watch,
      root: opts.root,
      manifest: opts.manifest,
      ...(opts.hostname === undefined ? {} : { hostname: opts.hostname }),
      onReport: onEvent,
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

/**
 * Wraps the event-report path: while a package manager transaction runs, its event reports are
 * not sent (files are written its database does not name yet: they would page as unowned drift
 * and resolve seconds later). When it ends, one full scan reports the whole batch, each file
 * under its package with the change set (the command) that brought it. A batch that started
 * before the end was seen is left out too: the full scan, queued behind it, covers it. The
 * hold is bounded: after `maxHoldMs` the full scan runs anyway and reports pass again.
 */
export function holdDuringTransactions<M extends Manifest | ManifestIndex>(opts: MonitorOptions<M>, fullScan: () => Promise<Report>, closed: () => boolean): (report: Report) => Promise<void> {
  const cfg = opts.packageTransactions === false ? {} : (opts.packageTransactions ?? {});
  const probe = cfg.probe ?? (() => runningTransaction(opts.root.dir === '' ? '/' : opts.root.dir));
  const pollMs = cfg.pollMs ?? 250;
  const maxHoldMs = cfg.maxHoldMs ?? 10 * 60_000;
  let holding = false;
  let lastSeenRunning = 0;
  // After a hold that ran out: reports pass until the transaction is seen ended once.
  let outlasted = false;

  const hold = (what: string): void => {
    holding = true;
    const since = Date.now();
    lastSeenRunning = since;
    opts.onHold?.(`package transaction running (${what}): event reports held until it ends`);
    const poll = async (): Promise<void> => {
      while (!closed()) {
        await new Promise((r) => setTimeout(r, pollMs).unref());
        const still = await probe().catch(() => null);
        if (still === null) break;
        lastSeenRunning = Date.now();
        if (Date.now() - since >= maxHoldMs) {
          outlasted = true;
          opts.onHold?.(`package transaction still running after ${Math.round(maxHoldMs / 1000)} s (${still}): reporting anyway`);
          break;
        }
      }
      // Until now it may have been running: a batch that started before this read half-written state.
      lastSeenRunning = Date.now();
      holding = false;
      if (closed()) return;
      if (!outlasted) opts.onHold?.(`package transaction ended after ${((Date.now() - since) / 1000).toFixed(1)} s: one full scan reports it`);
      await fullScan();
    };
    poll().catch(opts.onError);
  };

  return async (report) => {
    // The report that says the watch degraded always goes (it carries no findings).
    if (report.scan !== 'event' || (report.findings.length === 0 && report.watch?.state === 'degraded')) return opts.onReport(report);
    if (holding) return;
    const running = await probe().catch(() => null);
    if (running === null) {
      outlasted = false;
      // Started while the transaction was still running: what it read may be half-written.
      if (Date.parse(report.scannedAt) <= lastSeenRunning) return;
      return opts.onReport(report);
    }
    if (outlasted) return opts.onReport(report);
    hold(running);
  };
}

