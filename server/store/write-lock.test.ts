// The API's connection writes beside the ingest writer's (and, on a shared database, other
// nodes'). A triage act that reads, then writes, must wait for the other writer, not fail (a 500)
// because its snapshot went stale.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { STORE_BACKENDS } from '../../test/helpers/store-backends.js';
import type { FreshStore } from '../../test/helpers/store-backends.js';

describe.each(STORE_BACKENDS)('store on $name beside another writer', (backend) => {
  let db: FreshStore;
  beforeEach(async () => {
    db = await backend.fresh();
  });
  afterEach(async () => {
    await db.drop();
  });

  it('sets a host\'s labels while another connection is writing, once that one commits', async () => {
    const { store } = db;
    const now = new Date('2026-11-29T12:00:00Z');
    const { agentId } = (await store.enrollAgent(await store.createEnrollSecret(now), 'busy', now))!;
    const finished = await db.otherWriterOnHost(agentId, 200);
    try {
      const res = await store.triage.setLabels({ hostId: agentId, labels: { env: 'prod' }, actor: { id: 'analyst', role: 'analyst' }, now });
      expect(res.labels).toEqual({ env: 'prod' });
      expect((await store.getHost(agentId, now))!.outboxDepth).toBe(1);
    } finally {
      await finished();
    }
  });
});
