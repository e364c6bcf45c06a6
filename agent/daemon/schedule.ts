import { createHash } from 'node:crypto';
import cron from 'node-cron';
import type { ScheduledTask } from 'node-cron';

/**
 * A stable offset in [0, periodMs) derived from the host's id, so a fleet's hourly full scans
 * spread over the hour instead of all hashing their disks (and hitting the server) at :00, and a
 * host keeps its slot across restarts. Pure.
 */
export function jitterMs(hostId: string, periodMs: number): number {
  if (!Number.isInteger(periodMs) || periodMs <= 0) throw new RangeError(`periodMs must be a positive integer, got ${periodMs}`);
  const digest = createHash('sha256').update(hostId).digest();
  // 48 bits of the digest: uniform enough over any period a schedule uses, and exact in a double.
  return digest.readUIntBE(0, 6) % periodMs;
}

/** The default full-scan schedule: hourly, at this host's own minute and second. Pure. */
export function hourlyCronFor(hostId: string): string {
  const offset = jitterMs(hostId, 3_600_000);
  const minute = Math.floor(offset / 60_000);
  const second = Math.floor((offset % 60_000) / 1000);
  return `${second} ${minute} * * * *`;
}

const QUIET = { info: () => {}, warn: () => {}, debug: () => {}, error: () => {} };

export interface FullScanSchedule {
  /** The cron expression in force (six fields, seconds first). */
  readonly expression: string;
  stop(): Promise<void>;
}

export interface ScheduleOptions {
  /** A node-cron expression; default `hourlyCronFor(hostId)`. */
  expression?: string;
  hostId: string;
  task: () => Promise<void>;
  /** A failed run is reported here and the schedule keeps going: the next run may succeed. */
  onError: (err: unknown) => void;
}

/**
 * Runs `task` on the schedule. A run that is still going when the next is due is skipped
 * (noOverlap): full scans of a slow disk must not pile up.
 */
export function scheduleFullScans(opts: ScheduleOptions): FullScanSchedule {
  const expression = opts.expression ?? hourlyCronFor(opts.hostId);
  if (!cron.validate(expression)) throw new RangeError(`not a valid cron expression: "${expression}"`);
  const task: ScheduledTask = cron.schedule(
    expression,
    async () => {
      try {
        await opts.task();
      } catch (err) {
        opts.onError(err);
      }
    },
    // node-cron logs a skipped overlapping run as a warning; skipping is the intent here.
    { noOverlap: true, name: `quicksand-full-scan-${opts.hostId}`, logger: QUIET },
  );
  return {
    expression,
    stop: async () => {
      await task.destroy();
    },
  };
}
