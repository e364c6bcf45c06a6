// The cluster port on every backend: sessions (which node holds which agent), commands as rows
// claimed once, and leases. PostgreSQL runs the same cases through STORE_BACKENDS.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { STORE_BACKENDS } from '../../test/helpers/store-backends.js';
import type { FreshStore } from '../../test/helpers/store-backends.js';
import type { Store } from './types.js';

const t0 = new Date('2026-12-01T10:00:00.000Z');
const at = (s: number): Date => new Date(t0.getTime() + s * 1000);

describe.each(STORE_BACKENDS)('cluster on $name', (backend) => {
  let fresh: FreshStore;
  let store: Store;
  let agents: string[];
  beforeEach(async () => {
    fresh = await backend.fresh();
    store = fresh.store;
    const secret = await store.createEnrollSecret(t0);
    agents = [];
    for (const name of ['a', 'b', 'c']) agents.push((await store.enrollAgent(secret, name, t0))!.agentId);
  });
  afterEach(() => fresh.drop());

  it('says which node holds an agent, moves it with a newer connection, and a close never undoes another node’s session', async () => {
    const [a, b] = agents as [string, string];
    await store.cluster.openSessions([a, b], 'n1', at(0));
    expect(await store.cluster.sessionOf(a, at(-1))).toMatchObject({ agentId: a, nodeId: 'n1' });
    await store.cluster.openSessions([a], 'n2', at(1));
    expect((await store.cluster.sessionOf(a, at(-1)))?.nodeId).toBe('n2');
    // n1's socket to `a` closes after the agent moved: n2's session stays.
    await store.cluster.closeSession(a, 'n1');
    expect((await store.cluster.sessionOf(a, at(-1)))?.nodeId).toBe('n2');
    await store.cluster.closeSession(a, 'n2');
    expect(await store.cluster.sessionOf(a, at(-1))).toBeNull();
    expect((await store.cluster.listSessions(at(-1))).map((s) => [s.agentId, s.nodeId])).toEqual([[b, 'n1']]);
    await store.cluster.clearSessions('n1');
    expect(await store.cluster.listSessions(at(-1))).toEqual([]);
  });

  it('expires the sessions of a node that stopped its heartbeat, and keeps those of the nodes that beat', async () => {
    const [a, b, c] = agents as [string, string, string];
    await store.cluster.openSessions([a], 'dead', at(0));
    await store.cluster.openSessions([b, c], 'alive', at(0));
    // Before the heartbeat expires it, a silent node's session is not live any more.
    expect(await store.cluster.sessionOf(a, at(20))).toBeNull();
    expect(await store.cluster.heartbeat('alive', at(40), at(30))).toBe(1);
    expect((await store.cluster.listSessions(at(35))).map((s) => s.agentId).sort()).toEqual([b, c].sort());
    expect(await store.cluster.sessionOf(a, at(0))).toBeNull();
  });

  it('queues a command as a row, announces its id, and lets exactly one node claim it', async () => {
    const [a, b] = agents as [string, string];
    const heard: number[] = [];
    const listening = await store.cluster.listenCommands({ command: (id) => heard.push(id), resync: () => {} });
    try {
      const first = await store.cluster.queueCommand({ agentId: a, command: 'scan-now', now: at(0), expiresAt: at(300) });
      const second = await store.cluster.queueCommand({ agentId: a, command: 'upload-observation', baseline: 2, now: at(1), expiresAt: at(300) });
      await store.cluster.queueCommand({ agentId: b, command: 'disconnect', now: at(2), expiresAt: at(300) });
      const stale = await store.cluster.queueCommand({ agentId: a, command: 'scan-now', now: at(-600), expiresAt: at(-300) });
      await expect.poll(() => heard.length).toBe(4);
      expect(heard.slice(0, 2)).toEqual([first.id, second.id]);
      expect(await store.cluster.pendingCommand(second.id, at(3))).toEqual({ id: second.id, agentId: a, command: 'upload-observation', baseline: 2, createdAt: at(1).toISOString() });
      expect(await store.cluster.pendingCommand(stale.id, at(3))).toBeNull();
      expect((await store.cluster.pendingCommandsFor([a, b], at(3))).map((c) => c.command)).toEqual(['scan-now', 'upload-observation', 'disconnect']);
      // Two nodes race for one command: one sends it.
      const claims = await Promise.all([store.cluster.claimCommand(first.id, 'n1', at(4)), store.cluster.claimCommand(first.id, 'n2', at(4))]);
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect(await store.cluster.claimCommand(first.id, 'n1', at(5))).toBe(false);
      expect((await store.cluster.pendingCommandsFor([a], at(5))).map((c) => c.id)).toEqual([second.id]);
      // Delivered and expired rows are cleared by a heartbeat once older than its horizon.
      await store.cluster.heartbeat('n1', at(4000), at(3000));
      expect(await store.cluster.pendingCommandsFor([a, b], at(5))).toEqual([]);
    } finally {
      await listening.close();
    }
  });

  it('gives a lease to one holder at a time, renews it for its holder, and hands it on once it expired or was released', async () => {
    expect(await store.cluster.acquireLease('schedules', 'n1', at(0), 60_000)).toBe(true);
    expect(await store.cluster.acquireLease('schedules', 'n2', at(30), 60_000)).toBe(false);
    expect(await store.cluster.acquireLease('schedules', 'n1', at(50), 60_000)).toBe(true);
    // Renewed at 50 s: still n1's at 100 s, free at 111 s.
    expect(await store.cluster.acquireLease('schedules', 'n2', at(100), 60_000)).toBe(false);
    expect(await store.cluster.acquireLease('schedules', 'n2', at(111), 60_000)).toBe(true);
    expect(await store.cluster.acquireLease('other', 'n1', at(111), 60_000)).toBe(true);
    await store.cluster.releaseLease('schedules', 'n1');
    expect(await store.cluster.acquireLease('schedules', 'n1', at(112), 60_000)).toBe(false);
    await store.cluster.releaseLease('schedules', 'n2');
    expect(await store.cluster.acquireLease('schedules', 'n1', at(112), 60_000)).toBe(true);
    // Nodes racing for a free lease: one gets it.
    const race = await Promise.all(['x', 'y', 'z'].map((n) => store.cluster.acquireLease('race', n, at(200), 60_000)));
    expect(race.filter(Boolean)).toHaveLength(1);
  });

  it('answers ping while the database is there', async () => {
    await expect(store.cluster.ping()).resolves.toBeUndefined();
  });
});
