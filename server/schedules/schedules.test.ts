import { describe, expect, it } from 'vitest';
import { parseAlertSink } from '../../shared/alerts.js';
import type { HostSummary } from '../../shared/api.js';
import { planDigest, pruneCutoff, staleCutoff } from './schedules.js';

const now = new Date('2026-11-29T08:00:00Z');
const hook = parseAlertSink({ type: 'webhook', id: 'digest', url: 'http://127.0.0.1:9/d', secret: 'a-digest-secret-of-16+' }, 'sink');
const pager = parseAlertSink({ type: 'pagerduty', id: 'pager', routingKey: 'a'.repeat(32) }, 'sink');
const pet = (hostname: string, driftScore: number): HostSummary => ({
  id: hostname, hostname, status: 'pet', image: null, openFindings: 1, driftScore, petSince: null, lastSeen: null, lastReportAt: null, revoked: false, watch: null, labels: {},
});

describe('server schedule decisions', () => {
  it('counts a host stale from the stale interval before now', () => {
    expect(staleCutoff(now, 2 * 3_600_000).toISOString()).toBe('2026-11-29T06:00:00.000Z');
  });

  it('keeps history for ever at retention 0 and prunes before the retention otherwise', () => {
    expect(pruneCutoff(now, 0)).toBeNull();
    expect(pruneCutoff(now, 30)!.toISOString()).toBe('2026-10-30T08:00:00.000Z');
  });

  it('writes one digest per day naming the most drifted pets, and never to a pager', () => {
    const plan = planDigest([hook, pager], 'digest', { counts: { cattle: 7, pet: 2, stale: 1 }, pets: [pet('db-1', 3), pet('web-9', 110)] }, now);
    expect('alert' in plan && plan.alert).toMatchObject({ dedupKey: 'quicksand:digest:2026-11-29', severity: 'low' });
    expect('alert' in plan && plan.alert.title).toBe('Quicksand digest 2026-11-29: 2 pets, 7 cattle, 1 stale; most drifted: web-9 (score 110, 1 open), db-1 (score 3, 1 open)');
    expect(planDigest([hook, pager], 'pager', { counts: { cattle: 0, pet: 0, stale: 0 }, pets: [] }, now)).toEqual({ skipped: expect.stringMatching(/is a pager/) });
    expect(planDigest([hook], undefined, { counts: { cattle: 0, pet: 0, stale: 0 }, pets: [] }, now)).toEqual({ skipped: 'no digest sink configured' });
  });
});
