// Liveness and the stale schedule on every backend: heartbeats are written where each backend keeps
// them (PostgreSQL: a narrow row of their own) and every reader shows them, while the stale
// schedule, under a short stale time, marks a host stale by its reports (docs/detection.md) and
// never one that keeps reporting.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { STORE_BACKENDS, reportFrame } from '../../test/helpers/store-backends.js';
import type { FreshStore } from '../../test/helpers/store-backends.js';
import type { IngestItem, Store } from '../store/types.js';
import { startSchedules } from './schedules.js';

const t0 = new Date('2026-12-01T10:00:00.000Z');
const at = (s: number): Date => new Date(t0.getTime() + s * 1000);
const STALE_AFTER_MS = 60_000;

describe.each(STORE_BACKENDS)('liveness on the $name store', (backend) => {
  let fresh: FreshStore;
  let store: Store;
  beforeEach(async () => {
    fresh = await backend.fresh({ staleAfterMs: STALE_AFTER_MS });
    store = fresh.store;
  });
  afterEach(() => fresh.drop());

  it('never marks stale a host that keeps reporting and heartbeating under a short stale time, and marks one stale once it stops', async () => {
    const secret = await store.createEnrollSecret(t0);
    const live = (await store.enrollAgent(secret, 'live', t0))!.agentId;
    const quiet = (await store.enrollAgent(secret, 'quiet', t0))!.agentId;
    const beatsOnly = (await store.enrollAgent(secret, 'beats-only', t0))!.agentId;
    await store.ingestBatch([live, quiet, beatsOnly].map((id) => ({ type: 'report', agentId: id, frame: reportFrame(id, 1, 'full', [], t0), receivedAt: t0 })));
    let clock = t0;
    const schedules = startSchedules({ store, now: () => clock, settings: { staleAfterMs: STALE_AFTER_MS, retentionDays: 0 }, cron: false });
    const marked: unknown[] = [];
    let seq = 1;
    // Five stale times: `live` heartbeats every 10 s and reports every 30 s; `beats-only` only
    // heartbeats; `quiet` sends nothing. The schedule runs every 10 s.
    for (let s = 10; s <= 300; s += 10) {
      clock = at(s);
      const items: IngestItem[] = [
        { type: 'heartbeat', agentId: live, outboxDepth: s, receivedAt: clock },
        { type: 'heartbeat', agentId: beatsOnly, outboxDepth: 1, receivedAt: clock },
      ];
      if (s % 30 === 0) items.push({ type: 'report', agentId: live, frame: reportFrame(live, ++seq, 'event', [], clock), receivedAt: clock });
      expect(await store.ingestBatch(items.slice(0, 2))).toEqual([{ type: 'other' }, { type: 'other' }]);
      if (items.length > 2) await store.ingestBatch(items.slice(2));
      marked.push(...((await schedules.run('stale')) as string[]));
      expect((await store.getHost(live, clock))!.status).toBe('cattle');
    }
    await schedules.stop();
    // Each silent host once, when a stale time had passed since its last report; heartbeats are no report.
    expect(marked.sort()).toEqual([quiet, beatsOnly].sort());
    const now = at(300);
    expect(await store.getHost(live, now)).toMatchObject({ status: 'cattle', lastSeen: at(300).toISOString(), lastReportAt: at(300).toISOString(), outboxDepth: 300 });
    // A heartbeat after the last report shows as lastSeen, with its outbox depth, on every reader.
    await store.ingestBatch([{ type: 'heartbeat', agentId: live, outboxDepth: 7, receivedAt: at(305) }]);
    expect(await store.getHost(live, at(305))).toMatchObject({ lastSeen: at(305).toISOString(), lastReportAt: at(300).toISOString(), outboxDepth: 7 });
    const seen = (hosts: ReadonlyArray<{ id: string; lastSeen: string | null; status: string }>) => Object.fromEntries(hosts.map((h) => [h.id, [h.status, h.lastSeen]]));
    const expected = { [live]: ['cattle', at(305).toISOString()], [beatsOnly]: ['stale', at(300).toISOString()], [quiet]: ['stale', t0.toISOString()] };
    expect(seen(await store.listHosts({}, at(305)))).toEqual(expected);
    expect(seen(await store.fleetHosts({}, { limit: 10 }, at(305)))).toEqual(expected);
    // A heartbeat older than the one stored (another node's, late) does not move lastSeen back;
    // only PostgreSQL has several nodes (one SQLite writer stores one host's frames in order).
    if (backend.name !== 'postgres') return;
    await store.ingestBatch([{ type: 'heartbeat', agentId: live, outboxDepth: 9, receivedAt: at(301) }]);
    expect(await store.getHost(live, at(305))).toMatchObject({ lastSeen: at(305).toISOString(), outboxDepth: 7 });
  });
});
