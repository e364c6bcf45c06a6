import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { ScheduledTask } from 'node-cron';

/**
 * node-cron, loaded only for a schedule given on the command line. Each of its ticks formats the
 * time with Intl.DateTimeFormat, and that alone keeps ~5 MB of ICU data of the node binary
 * resident in the idle daemon (measured on the minbase: ICU pages resident 7.2 MB in the
 * daemon; Intl.DateTimeFormat as node-cron builds it 4.8 MB of that, a localeCompare 2 MB). The
 * default hourly schedule needs no cron library: it is one timer to the host's own minute.
 * Loaded synchronously (its CommonJS build): validation stays a plain function.
 */
const loadCron = (): typeof import('node-cron').default => createRequire(import.meta.url)('node-cron') as typeof import('node-cron').default;

/** Whether node-cron accepts `expression` (5 fields, or 6 with seconds). */
export function isCronExpression(expression: string): boolean {
  return loadCron().validate(expression);
}

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
  const { minute, second } = hourlySlot(hostId);
  return `${second} ${minute} * * * *`;
}

function hourlySlot(hostId: string): { minute: number; second: number } {
  const offset = jitterMs(hostId, 3_600_000);
  return { minute: Math.floor(offset / 60_000), second: Math.floor((offset % 60_000) / 1000) };
}

/**
 * The first time after `now` whose local minute and second are `minute`:`second`, what the
 * cron expression `second minute * * * *` matches next. Pure.
 */
export function nextHourly(now: Date, minute: number, second: number): Date {
  const next = new Date(now.getTime());
  next.setMinutes(minute, second, 0);
  while (next.getTime() <= now.getTime()) next.setTime(next.getTime() + 3_600_000);
  return next;
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
  const run = async (): Promise<void> => {
    try {
      await opts.task();
    } catch (err) {
      opts.onError(err);
    }
  };
  if (opts.expression === undefined) return hourlyAt(opts.hostId, run);
  const expression = opts.expression;
  const cron = loadCron();
  if (!cron.validate(expression)) throw new RangeError(`not a valid cron expression: "${expression}"`);
  const task: ScheduledTask = cron.schedule(
    expression,
    run,
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

/**
 * The default schedule as one timer: the next run is armed when the last one ended, so a run
 * still going at its next slot skips it, as node-cron's noOverlap does.
 */
function hourlyAt(hostId: string, run: () => Promise<void>): FullScanSchedule {
  const { minute, second } = hourlySlot(hostId);
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const arm = (): void => {
    if (stopped) return;
    const due = nextHourly(new Date(), minute, second).getTime();
    const fire = (): void => {
      // A timer runs on the monotonic clock: a wall clock set back meanwhile is waited out.
      if (Date.now() < due - 1000) timer = setTimeout(fire, due - Date.now());
      else void run().then(arm);
    };
    timer = setTimeout(fire, due - Date.now());
  };
  arm();
  return {
    expression: hourlyCronFor(hostId),
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
