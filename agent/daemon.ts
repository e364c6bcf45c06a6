// The agent daemon: scans on start, on a cron schedule and on the server's `scan-now`, and hands
// each report to the outbox; the transport delivers. Schedule and commands decide *when* only.
import cron from 'node-cron';
import type { Manifest } from '../shared/manifest.js';
import type { Report } from '../shared/report.js';
import type { Outbox } from './outbox.js';
import type { Root } from './root.js';
import type { Transport } from './transport.js';

export interface DaemonOptions {
  root: Root;
  manifest: Manifest;
  outbox: Outbox;
  transport: Transport;
  scan: (root: Root, manifest: Manifest) => Promise<Report>;
  /** node-cron expression (5 fields, or 6 with seconds). */
  schedule: string;
  log: (line: string) => void;
  now?: () => Date;
}

export interface Daemon {
  /** Runs a scan now, or right after the running one if one is running. */
  requestScan(reason: string): Promise<void>;
  stop(): Promise<void>;
}

export function startDaemon(opts: DaemonOptions): Daemon {
  const now = opts.now ?? (() => new Date());
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;

  async function scanOnce(reason: string): Promise<void> {
    try {
      const report = await opts.scan(opts.root, opts.manifest);
      if (stopped) return;
      const entry = opts.outbox.enqueue(report, 'full', now());
      opts.log(`scan (${reason}): ${report.summary.status}, ${report.summary.findings} findings; report ${entry.seq} queued, ${opts.outbox.depth()} waiting`);
      opts.transport.notify();
    } catch (err) {
      // A failed scan is logged and retried at the next tick; the daemon stays up.
      opts.log(`scan (${reason}) failed: ${(err as Error).message}`);
    }
  }

  function requestScan(reason: string): Promise<void> {
    if (stopped) return Promise.resolve();
    if (running !== null) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await scanOnce(reason);
      } while (again && !stopped);
      running = null;
    })();
    return running;
  }

  const task = cron.schedule(opts.schedule, () => void requestScan('schedule'), { noOverlap: true });
  opts.transport.start();
  void requestScan('start');

  return {
    requestScan,
    async stop() {
      stopped = true;
      await task.stop();
      await task.destroy();
      await running;
      await opts.transport.stop();
    },
  };
}
