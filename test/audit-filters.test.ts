// The audit log's filters (actor, host, time range) and their paging, the same on every backend:
// the console's audit page and GET /api/v1/audit both ask them of the store.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../server/store/types.js';
import { STORE_BACKENDS } from './helpers/store-backends.js';
import type { FreshStore } from './helpers/store-backends.js';

describe.each(STORE_BACKENDS)('audit filters ($name)', (backend) => {
  let db: FreshStore;
  let store: Store;
  beforeAll(async () => {
    db = await backend.fresh();
    store = db.store;
    const entries: Array<[string, string | null, string, string, string]> = [
      ['2026-11-30T23:59:59.999Z', 'ana', 'approve', 'host:h1/finding:1', 'user:ana'],
      ['2026-12-01T00:00:00.000Z', 'ana', 'rebaseline', 'host:h1', 'user:ana'],
      ['2026-12-01T08:00:00.000Z', 'bob', 'approve', 'host:h10/finding:2', 'user:bob'],
      ['2026-12-01T09:00:00.000Z', null, 'host-stale', 'host:h1', 'system'],
      ['2026-12-02T00:00:00.000Z', 'ana', 'approve', 'host:h1/change-set:cs', 'user:ana'],
    ];
    for (const [at, name, action, target, id] of entries) await store.triage.audit({ actor: { id, role: name === null ? 'system' : 'analyst', name }, action, target, now: new Date(at) });
  });
  afterAll(async () => {
    await db?.drop();
  });
  const actions = async (q: Record<string, string | number>) => (await store.triage.listAudit({ limit: 100, ...q })).entries.map((e) => `${e.action} ${e.target}`);

  it('keeps one host’s entries and its findings’, not a host whose id starts the same', async () => {
    expect(await actions({ host: 'h1' })).toEqual(['approve host:h1/finding:1', 'rebaseline host:h1', 'host-stale host:h1', 'approve host:h1/change-set:cs']);
  });
  it('keeps an actor by user name or by actor id', async () => {
    expect(await actions({ actor: 'bob' })).toEqual(['approve host:h10/finding:2']);
    expect(await actions({ actor: 'system' })).toEqual(['host-stale host:h1']);
  });
  it('keeps a time range, from inclusive, to exclusive, a date meaning its midnight UTC', async () => {
    expect(await actions({ from: '2026-12-01', to: '2026-12-02' })).toEqual(['rebaseline host:h1', 'approve host:h10/finding:2', 'host-stale host:h1']);
    expect(await actions({ from: '2026-12-01T08:00:00Z' })).toEqual(['approve host:h10/finding:2', 'host-stale host:h1', 'approve host:h1/change-set:cs']);
  });
  it('combines the filters and pages them, newest page first', async () => {
    const first = await store.triage.listAudit({ actor: 'ana', action: 'approve', limit: 1 });
    expect(first.entries.map((e) => e.target)).toEqual(['host:h1/change-set:cs']);
    const second = await store.triage.listAudit({ actor: 'ana', action: 'approve', limit: 1, before: first.older! });
    expect([second.entries.map((e) => e.target), second.older]).toEqual([['host:h1/finding:1'], null]);
  });
});
