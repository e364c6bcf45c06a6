// The server's own schedules (node-cron): hosts whose reports stopped are marked stale,
// approvals past their expiry count again, history past the retention is pruned, and a daily
// digest goes to one sink. The decisions are pure functions below; the jobs only read the clock,
// call them and write through the store.
import { randomUUID } from 'node:crypto';
import cron from 'node-cron';
import type { ScheduledTask } from 'node-cron';
import type { AlertSink } from '../../shared/alerts.js';
import type { HostSummary } from '../../shared/api.js';
import type { Alert } from '../alerts/alert.js';
import type { Store } from '../store/types.js';

export const SCHEDULE_JOBS = ['stale', 'expire-approvals', 'prune', 'digest'] as const;
export type ScheduleJob = (typeof SCHEDULE_JOBS)[number];

export interface ScheduleSettings {
  staleAfterMs: number;
  /** History older than this is pruned; 0 keeps everything. */
  retentionDays: number;
  /** The sink the daily digest goes to; none: no digest. */
  digestSinkId?: string;
  cron?: Partial<Record<ScheduleJob, string>>;
}

export const DEFAULT_SCHEDULE_CRON: Record<ScheduleJob, string> = {
  stale: '* * * * *',
  'expire-approvals': '* * * * *',
  prune: '17 3 * * *',
  digest: '0 8 * * *',
};

/** Hosts whose last report is older than this are stale. Pure. */
export function staleCutoff(now: Date, staleAfterMs: number): Date {
  return new Date(now.getTime() - staleAfterMs);
}

/** Everything before this may be pruned, or null when history is kept for ever. Pure. */
export function pruneCutoff(now: Date, retentionDays: number): Date | null {
  if (!(retentionDays > 0)) return null;
  return new Date(now.getTime() - retentionDays * 86_400_000);
}

/**
 * The digest as an alert-shaped message, so every sink type can carry it; null when it has no
 * sink to go to. A pager is no place for a digest: a PagerDuty sink is refused. Pure.
 */
export function planDigest(
  sinks: readonly AlertSink[],
  sinkId: string | undefined,
  fleet: { counts: Record<'cattle' | 'pet' | 'stale', number>; pets: readonly HostSummary[] },
  now: Date,
): { sink: AlertSink; alert: Alert } | { skipped: string } {
  if (sinkId === undefined) return { skipped: 'no digest sink configured' };
  const sink = sinks.find((s) => s.id === sinkId);
  if (sink === undefined) return { skipped: `digest sink ${sinkId} is not configured` };
  if (sink.type === 'pagerduty') return { skipped: `digest sink ${sinkId} is a pager; send the digest to a webhook or Slack` };
  const day = now.toISOString().slice(0, 10);
  const { cattle, pet, stale } = fleet.counts;
  const worst = [...fleet.pets].sort((a, b) => b.driftScore - a.driftScore).slice(0, 5);
  const named = worst.length === 0 ? '' : `; most drifted: ${worst.map((h) => `${h.hostname} (score ${h.driftScore}, ${h.openFindings} open)`).join(', ')}`;
  return {
    sink,
    alert: {
      action: 'trigger',
      dedupKey: `quicksand:digest:${day}`,
      host: { id: 'fleet', hostname: 'fleet', labels: {} },
      image: { name: 'fleet', version: day },
      severity: 'low',
      title: `Quicksand digest ${day}: ${pet} pet${pet === 1 ? '' : 's'}, ${cattle} cattle, ${stale} stale${named}`,
      findings: [],
      counts: { findings: pet, files: 0 },
      at: now.toISOString(),
    },
  };
}

export interface Schedules {
  /** Runs one job now (what cron does at its time); tests and the CLI call it. Never rejects. */
  run(job: ScheduleJob): Promise<unknown>;
  stop(): Promise<void>;
}

/**
 * How long the node that ran the last tick keeps the schedules. Every minute a job ticks, and the
 * holder renews at each tick; a node that died gives them up to another after this.
 */
export const DEFAULT_SCHEDULE_LEASE_MS = 3 * 60_000;

export function startSchedules(deps: {
  store: Store;
  now: () => Date;
  settings: ScheduleSettings;
  log?: (line: string) => void;
  cron?: boolean;
  /**
   * Asked at every tick: true when this node holds the schedules' lease (taken, or renewed). With
   * several nodes on one database only the holder runs the jobs. Absent: this node always does.
   */
  lease?: () => Promise<boolean>;
}): Schedules {
  const { store, now, settings } = deps;
  const jobs: Record<ScheduleJob, () => Promise<unknown>> = {
    stale: () => store.triage.markStale(staleCutoff(now(), settings.staleAfterMs), now()),
    'expire-approvals': () => store.triage.expireApprovals(now()),
    prune: async () => {
      const before = pruneCutoff(now(), settings.retentionDays);
      return before === null ? { reports: 0, findings: 0, alerts: 0 } : store.maintenance.prune(before);
    },
    digest: async () => {
      const at = now();
      const [sinks, counts, pets] = await Promise.all([store.listSinks(), store.countHosts(at), store.listHosts({ status: 'pet' }, at)]);
      const plan = planDigest(sinks, settings.digestSinkId, { counts, pets }, at);
      if ('skipped' in plan) return plan;
      await store.alertQueue.enqueue([{ id: randomUUID(), sinkId: plan.sink.id, alert: plan.alert, notBefore: at.getTime() }], at);
      return { queued: plan.alert.dedupKey };
    },
  };
  const run = async (job: ScheduleJob): Promise<unknown> => {
    try {
      return await jobs[job]();
    } catch (err) {
      // One failed run is logged; the next tick tries again.
      deps.log?.(`schedule ${job} failed: ${err instanceof Error ? err.message : String(err)}`);
      return null;
    }
  };
  // A tick runs the job on the lease holder only; a lease that cannot be read skips the tick.
  const tick = async (job: ScheduleJob): Promise<unknown> => {
    const held = deps.lease === undefined ? true : await deps.lease().catch((err: unknown) => {
      deps.log?.(`schedule ${job}: cannot take the schedules' lease: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    });
    return held ? run(job) : null;
  };
  const tasks: ScheduledTask[] =
    deps.cron === false
      ? []
      : SCHEDULE_JOBS.map((job) => {
          const expression = settings.cron?.[job] ?? DEFAULT_SCHEDULE_CRON[job];
          if (!cron.validate(expression)) throw new RangeError(`schedule ${job}: not a valid cron expression: "${expression}"`);
          return cron.schedule(expression, () => tick(job), { noOverlap: true, name: `quicksand-server-${job}` });
        });
  return {
    run,
    async stop() {
      for (const t of tasks) await t.destroy();
    },
  };
}
