// Console users, sessions, the failed-login throttle and users' API tokens, on every store backend.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../server/store/types.js';
import { STORE_BACKENDS } from './helpers/store-backends.js';
import type { FreshStore } from './helpers/store-backends.js';

const T0 = new Date('2026-12-01T10:00:00Z');
const at = (ms: number): Date => new Date(T0.getTime() + ms);
const MIN = 60_000;

describe.each(STORE_BACKENDS)('users and sessions on the $name store', (backend) => {
  let db: FreshStore;
  let store: Store;
  beforeEach(async () => {
    db = await backend.fresh();
    store = db.store;
    expect(await store.createUser({ name: 'ana', role: 'analyst', passwordHash: 'hash-a', now: T0 })).toBe(true);
  });
  afterEach(async () => {
    await db.drop();
  });

  it('keeps a user once, lists them without the hash, and hands the hash to the login check', async () => {
    expect(await store.createUser({ name: 'ana', role: 'admin', passwordHash: 'other', now: T0 })).toBe(false);
    expect(await store.listUsers()).toEqual([{ name: 'ana', role: 'analyst', createdAt: T0.toISOString(), passwordChangedAt: T0.toISOString(), disabledAt: null, lastLoginAt: null }]);
    expect((await store.userForLogin('ana'))?.passwordHash).toBe('hash-a');
    expect(await store.userForLogin('nobody')).toBeNull();
  });

  it('opens a session whose cookie stands for the user, and only a hash of it is kept', async () => {
    const { token, session } = await store.createSession({ user: 'ana', now: T0, idleMs: 30 * MIN, absoluteMs: 8 * 60 * MIN });
    expect(token).toMatch(/^qss\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    expect(await store.authenticateSession(token, at(MIN))).toEqual(session);
    expect(session).toMatchObject({ user: 'ana', role: 'analyst', expiresAt: at(8 * 60 * MIN).toISOString() });
    expect(session.csrf.length).toBeGreaterThanOrEqual(40);
    // The same id with another secret is no session.
    expect(await store.authenticateSession(`${token.slice(0, -4)}AAAA`, at(MIN))).toBeNull();
    expect((await store.listUsers())[0]!.lastLoginAt).toBe(T0.toISOString());
  });

  it('ends a session left idle, and one past its absolute end however busy', async () => {
    const idle = await store.createSession({ user: 'ana', now: T0, idleMs: 10 * MIN, absoluteMs: 60 * MIN });
    expect(await store.authenticateSession(idle.token, at(9 * MIN))).not.toBeNull();
    expect(await store.authenticateSession(idle.token, at(18 * MIN))).not.toBeNull(); // used at 9 min
    expect(await store.authenticateSession(idle.token, at(29 * MIN))).toBeNull();
    expect(await store.authenticateSession(idle.token, at(30 * MIN))).toBeNull();

    const busy = await store.createSession({ user: 'ana', now: T0, idleMs: 10 * MIN, absoluteMs: 60 * MIN });
    for (let m = 5; m < 60; m += 5) expect(await store.authenticateSession(busy.token, at(m * MIN))).not.toBeNull();
    expect(await store.authenticateSession(busy.token, at(60 * MIN))).toBeNull();
  });

  it('ends the session the browser came with when it logs in, at logout, and every one of a disabled user or a new password', async () => {
    const before = await store.createSession({ user: 'ana', now: T0, idleMs: 30 * MIN, absoluteMs: 60 * MIN });
    const after = await store.createSession({ user: 'ana', now: at(MIN), idleMs: 30 * MIN, absoluteMs: 60 * MIN, replaces: before.token });
    expect(await store.authenticateSession(before.token, at(2 * MIN))).toBeNull();
    expect(await store.deleteSession(after.token)).toBe(true);
    expect(await store.authenticateSession(after.token, at(2 * MIN))).toBeNull();
    expect(await store.deleteSession(after.token)).toBe(false);

    const s1 = await store.createSession({ user: 'ana', now: T0, idleMs: 30 * MIN, absoluteMs: 60 * MIN });
    expect(await store.setPassword('ana', 'hash-b', at(MIN))).toBe(true);
    expect(await store.authenticateSession(s1.token, at(2 * MIN))).toBeNull();
    expect((await store.userForLogin('ana'))?.passwordHash).toBe('hash-b');
    const s2 = await store.createSession({ user: 'ana', now: T0, idleMs: 30 * MIN, absoluteMs: 60 * MIN });
    expect(await store.setUserDisabled('ana', true, at(MIN))).toBe(true);
    expect(await store.setUserDisabled('ana', true, at(MIN))).toBe(false);
    expect(await store.authenticateSession(s2.token, at(2 * MIN))).toBeNull();
    expect((await store.listUsers())[0]!.disabledAt).toBe(at(MIN).toISOString());
    expect(await store.setUserDisabled('ana', false, at(3 * MIN))).toBe(true);
    expect(await store.setPassword('nobody', 'x', T0)).toBe(false);
  });

  it('locks a key after its maximum of failures within the window, once, until the lock runs out', async () => {
    const keys = [{ key: 'account:ana', max: 3 }, { key: 'address:10.0.0.9', max: 5 }];
    const policy = { windowMs: 15 * MIN, lockMs: 15 * MIN };
    expect(await store.noteLoginFailure({ keys, now: at(0), ...policy })).toEqual([]);
    expect(await store.noteLoginFailure({ keys, now: at(1000), ...policy })).toEqual([]);
    expect(await store.loginLockedUntil(['account:ana'], at(1500))).toBeNull();
    expect(await store.noteLoginFailure({ keys, now: at(2000), ...policy })).toEqual(['account:ana']);
    expect(await store.loginLockedUntil(['account:ana', 'address:10.0.0.9'], at(3000))).toBe(at(2000 + 15 * MIN).toISOString());
    // More failures while locked do not lock it again (one audit entry per lockout).
    expect(await store.noteLoginFailure({ keys, now: at(3000), ...policy })).toEqual([]);
    expect(await store.noteLoginFailure({ keys, now: at(4000), ...policy })).toEqual(['address:10.0.0.9']);
    expect(await store.loginLockedUntil(['account:ana'], at(2000 + 15 * MIN))).toBeNull();
    // A lock that ran out counts from one again.
    expect(await store.noteLoginFailure({ keys: [keys[0]!], now: at(16 * MIN), ...policy })).toEqual([]);
    await store.clearLoginFailures(['account:ana']);
    expect(await store.noteLoginFailure({ keys: [keys[0]!], now: at(16 * MIN), ...policy })).toEqual([]);
    expect(await store.noteLoginFailure({ keys: [keys[0]!], now: at(16 * MIN), ...policy })).toEqual([]);
    expect(await store.noteLoginFailure({ keys: [keys[0]!], now: at(16 * MIN), ...policy })).toEqual(['account:ana']);
  });

  it("gives a user's API token the user's role as it is, names the user, and stops it with the user", async () => {
    expect(await store.createUserToken('nobody', T0)).toBeNull();
    const token = (await store.createUserToken('ana', T0, 'ci job'))!;
    expect(await store.authenticateApiToken(token)).toMatchObject({ role: 'analyst', name: 'ana (ci job)', user: 'ana' });
    expect((await store.listApiTokens()).map((t) => [t.role, t.user, t.name])).toEqual([['analyst', 'ana', 'ci job']]);
    await store.setUserDisabled('ana', true, at(MIN));
    expect(await store.authenticateApiToken(token)).toBeNull();
    await store.setUserDisabled('ana', false, at(MIN));
    expect(await store.authenticateApiToken(token)).toMatchObject({ role: 'analyst', user: 'ana' });
    expect(await store.setUserRole('ana', 'auditor')).toBe('analyst');
    expect(await store.authenticateApiToken(token)).toMatchObject({ role: 'auditor', user: 'ana' });
    expect(await store.setUserRole('ana', 'auditor')).toBe('auditor');
    expect(await store.setUserRole('nobody', 'admin')).toBeNull();
    const plain = await store.createApiToken('auditor', T0, 'Q3 audit');
    expect(await store.authenticateApiToken(plain)).toEqual({ role: 'auditor', tokenId: expect.any(String), name: 'Q3 audit', user: null });
  });
});

describe.each(STORE_BACKENDS)('the console queries on the $name store', (backend) => {
  let db: FreshStore;
  afterEach(async () => {
    await db.drop();
  });

  it("names each host's most severe finding that counts, and forgets it once approved", async () => {
    db = await backend.fresh();
    const { store } = db;
    const { reportFrame } = await import('./helpers/store-backends.js');
    const secret = await store.createEnrollSecret(T0);
    const a = (await store.enrollAgent(secret, 'a', T0))!.agentId;
    const b = (await store.enrollAgent(secret, 'b', T0))!.agentId;
    await store.ingestBatch([
      { type: 'report', agentId: a, receivedAt: T0, frame: reportFrame(a, 1, 'full', [{ kind: 'file-added', severity: 'medium', path: '/etc/x' }, { kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: 'sl', after: '1' }], T0) },
      { type: 'report', agentId: b, receivedAt: T0, frame: reportFrame(b, 1, 'full', [], T0) },
    ]);
    expect(await store.worstSeverities(T0)).toEqual({ [a]: 'high' });
    const high = (await store.listFindings(a, { state: 'open' }, T0))!.find((f) => f.severity === 'high')!;
    await store.triage.approve({ hostId: a, findingIds: [high.id], reason: 'ok', actor: { id: 't', role: 'analyst' }, now: T0 });
    expect(await store.worstSeverities(T0)).toEqual({ [a]: 'medium' });
  });
});
