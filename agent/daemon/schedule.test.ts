import { describe, expect, it } from 'vitest';
import cron from 'node-cron';
import { hourlyCronFor, jitterMs, nextHourly, scheduleFullScans } from './schedule.js';

describe('full-scan schedule', () => {
  it('gives a host the same slot every time, inside the period', () => {
    expect(jitterMs('host-a', 3_600_000)).toBe(jitterMs('host-a', 3_600_000));
    for (const id of ['host-a', 'host-b', '', 'x'.repeat(1000)]) {
      const j = jitterMs(id, 3_600_000);
      expect(Number.isInteger(j) && j >= 0 && j < 3_600_000).toBe(true);
    }
    expect(() => jitterMs('h', 0)).toThrow(RangeError);
  });

  it('spreads a fleet over the hour instead of scanning all at :00', () => {
    const minutes = new Set(Array.from({ length: 200 }, (_, i) => hourlyCronFor(`agent-${i}`).split(' ')[1]));
    // 200 hosts over 60 minutes: nearly every minute is used, none is everyone's.
    expect(minutes.size).toBeGreaterThan(50);
  });

  it('writes a valid six-field hourly cron expression', () => {
    const expr = hourlyCronFor('host-a');
    expect(expr).toMatch(/^\d{1,2} \d{1,2} \* \* \* \*$/);
    expect(cron.validate(expr)).toBe(true);
  });

  it('finds the next hourly slot as the cron expression would, strictly after now', () => {
    const at = (h: number, m: number, s: number, ms = 0): Date => new Date(2026, 0, 5, h, m, s, ms);
    expect(nextHourly(at(10, 5, 0), 17, 30)).toEqual(at(10, 17, 30));
    expect(nextHourly(at(10, 17, 30), 17, 30)).toEqual(at(11, 17, 30));
    expect(nextHourly(at(10, 17, 29, 999), 17, 30)).toEqual(at(10, 17, 30));
    expect(nextHourly(at(23, 59, 0), 17, 30)).toEqual(new Date(2026, 0, 6, 0, 17, 30));
    // The same slot node-cron computes for the default expression.
    const expr = hourlyCronFor('host-a');
    const [second, minute] = expr.split(' ').map(Number);
    const next = nextHourly(new Date(), minute!, second!);
    const task = cron.schedule(expr, () => {});
    try {
      expect(task.getNextRun()?.getTime()).toBe(next.getTime());
    } finally {
      void task.destroy();
    }
  });

  it('refuses an invalid expression before scheduling anything', () => {
    expect(() => scheduleFullScans({ hostId: 'h', expression: 'every hour', task: async () => {}, onError: () => {} })).toThrow(/not a valid cron expression/);
  });

  it('runs the task on schedule and keeps going after a failed run', async () => {
    let runs = 0;
    const errors: unknown[] = [];
    const s = scheduleFullScans({
      hostId: 'h',
      expression: '* * * * * *',
      task: async () => {
        runs++;
        if (runs === 1) throw new Error('disk went away');
      },
      onError: (e) => errors.push(e),
    });
    try {
      await expect.poll(() => runs, { timeout: 10_000, interval: 50 }).toBeGreaterThanOrEqual(2);
      expect(errors.map((e) => (e as Error).message)).toEqual(['disk went away']);
    } finally {
      await s.stop();
    }
  });
});
