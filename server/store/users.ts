import { randomBytes } from 'node:crypto';
import type { Database as Db } from 'better-sqlite3';
import { newCredential, secretMatches, splitCredential } from '../secrets.js';
import type { Synchronous } from './async-adapter.js';
import type { ApiRole, SessionUser, UserInfo, Users } from './types.js';

export interface UserRow {
  name: string;
  role: ApiRole;
  password_hash: string;
  created_at: string;
  password_changed_at: string;
  disabled_at: string | null;
  last_login_at: string | null;
}

export interface SessionRow {
  id: string;
  hash: Buffer;
  user_name: string;
  csrf: string;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
  idle_ms: number;
  role: ApiRole;
  disabled_at: string | null;
}

// A session's last use is written at most this often: a page view is not worth a write each.
export const TOUCH_EVERY_MS = 30_000;

export const info = (r: UserRow): UserInfo => ({ name: r.name, role: r.role, createdAt: r.created_at, passwordChangedAt: r.password_changed_at, disabledAt: r.disabled_at, lastLoginAt: r.last_login_at });

export const sessionUser = (r: Pick<SessionRow, 'id' | 'user_name' | 'role' | 'csrf' | 'created_at' | 'expires_at'>): SessionUser => ({
  sessionId: r.id,
  user: r.user_name,
  role: r.role,
  csrf: r.csrf,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
});

/** Whether a session row is past its absolute or idle time at `now`. Pure. */
export const sessionEnded = (row: Pick<SessionRow, 'expires_at' | 'last_seen_at' | 'idle_ms'>, now: Date): boolean =>
  Date.parse(row.expires_at) <= now.getTime() || Date.parse(row.last_seen_at) + row.idle_ms <= now.getTime();

export interface FailureRow {
  failures: number;
  window_start: string;
  locked_until: string | null;
}

/** One more failed login for a key: its counter after it, and whether it locks the key now. Pure. */
export function nextFailure(r: FailureRow | undefined, max: number, now: Date, windowMs: number, lockMs: number): { row: FailureRow; lockNow: boolean } {
  const t = now.getTime();
  // A window that ended (or a lock that ran out) starts counting again.
  const fresh = r === undefined || Date.parse(r.window_start) + windowMs <= t || (r.locked_until !== null && Date.parse(r.locked_until) <= t);
  const count = fresh ? 1 : r.failures + 1;
  const lockNow = count >= max && (fresh || r.locked_until === null);
  const lockedUntil = lockNow ? new Date(t + lockMs).toISOString() : fresh ? null : r.locked_until;
  return { row: { failures: count, window_start: fresh ? now.toISOString() : r.window_start, locked_until: lockedUntil }, lockNow };
}

/** Console users, sessions (only a hash of each secret is kept) and the failed-login counters. */
export function createUsers(db: Db): Synchronous<Users> {
  const insertUser = db.prepare('INSERT INTO users (name, role, password_hash, created_at, password_changed_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING');
  const allUsers = db.prepare<[], UserRow>('SELECT * FROM users ORDER BY name');
  const oneUser = db.prepare<[string], UserRow>('SELECT * FROM users WHERE name = ?');
  const disable = db.prepare('UPDATE users SET disabled_at = ? WHERE name = ? AND disabled_at IS NULL');
  const enable = db.prepare('UPDATE users SET disabled_at = NULL WHERE name = ? AND disabled_at IS NOT NULL');
  const setRole = db.prepare('UPDATE users SET role = ? WHERE name = ?');
  const setHash = db.prepare('UPDATE users SET password_hash = ?, password_changed_at = ? WHERE name = ?');
  const noteLogin = db.prepare('UPDATE users SET last_login_at = ? WHERE name = ?');
  const endSessionsOf = db.prepare('DELETE FROM sessions WHERE user_name = ?');
  const insertSession = db.prepare(
    'INSERT INTO sessions (id, hash, user_name, csrf, created_at, last_seen_at, expires_at, idle_ms) VALUES (@id, @hash, @user, @csrf, @now, @now, @expiresAt, @idleMs)',
  );
  const session = db.prepare<[string], SessionRow>('SELECT s.*, u.role, u.disabled_at FROM sessions s JOIN users u ON u.name = s.user_name WHERE s.id = ?');
  const touch = db.prepare('UPDATE sessions SET last_seen_at = ? WHERE id = ?');
  const endSession = db.prepare('DELETE FROM sessions WHERE id = ?');
  const failures = db.prepare<[string], { failures: number; window_start: string; locked_until: string | null }>('SELECT failures, window_start, locked_until FROM login_failures WHERE key = ?');
  const putFailures = db.prepare(
    `INSERT INTO login_failures (key, failures, window_start, locked_until) VALUES (@key, @failures, @windowStart, @lockedUntil)
     ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start, locked_until = excluded.locked_until`,
  );
  const clearFailures = db.prepare('DELETE FROM login_failures WHERE key = ?');

  /** The session a cookie names, when its secret matches; ends it when it is past its time. */
  const live = (token: string, now: Date): SessionRow | null => {
    const parts = splitCredential(token, 'qss');
    if (parts === null) return null;
    const row = session.get(parts.id);
    if (row === undefined || !secretMatches(parts.secret, row.hash)) return null;
    if (sessionEnded(row, now)) {
      endSession.run(row.id);
      return null;
    }
    return row;
  };

  return {
    createUser: ({ name, role, passwordHash, now }) => insertUser.run(name, role, passwordHash, now.toISOString(), now.toISOString()).changes > 0,
    listUsers: () => allUsers.all().map(info),
    userForLogin(name) {
      const r = oneUser.get(name);
      return r === undefined ? null : { ...info(r), passwordHash: r.password_hash };
    },
    setUserDisabled: db.transaction((name: string, disabled: boolean, now: Date) => {
      if (!disabled) return enable.run(name).changes > 0;
      if (disable.run(now.toISOString(), name).changes === 0) return false;
      endSessionsOf.run(name);
      return true;
    }),
    setUserRole: db.transaction((name: string, role: ApiRole) => {
      const before = oneUser.get(name)?.role ?? null;
      if (before !== null && before !== role) setRole.run(role, name);
      return before;
    }),
    setPassword: db.transaction((name: string, passwordHash: string, now: Date) => {
      if (setHash.run(passwordHash, now.toISOString(), name).changes === 0) return false;
      endSessionsOf.run(name);
      return true;
    }),
    createSession: db.transaction((req: { user: string; now: Date; idleMs: number; absoluteMs: number; replaces?: string }) => {
      // Whatever session the browser came with ends: the login never keeps an id it did not make.
      if (req.replaces !== undefined) {
        const old = splitCredential(req.replaces, 'qss');
        if (old !== null) endSession.run(old.id);
      }
      const c = newCredential('qss');
      const csrf = randomBytes(32).toString('base64url');
      const expiresAt = new Date(req.now.getTime() + req.absoluteMs).toISOString();
      insertSession.run({ id: c.id, hash: c.hash, user: req.user, csrf, now: req.now.toISOString(), expiresAt, idleMs: req.idleMs });
      noteLogin.run(req.now.toISOString(), req.user);
      const role = oneUser.get(req.user)!.role;
      return { token: c.text, session: sessionUser({ id: c.id, user_name: req.user, role, csrf, created_at: req.now.toISOString(), expires_at: expiresAt }) };
    }),
    authenticateSession(token, now) {
      const row = live(token, now);
      if (row === null || row.disabled_at !== null) return null;
      if (now.getTime() - Date.parse(row.last_seen_at) >= TOUCH_EVERY_MS) touch.run(now.toISOString(), row.id);
      return sessionUser(row);
    },
    deleteSession(token) {
      const parts = splitCredential(token, 'qss');
      if (parts === null) return false;
      const row = session.get(parts.id);
      if (row === undefined || !secretMatches(parts.secret, row.hash)) return false;
      return endSession.run(row.id).changes > 0;
    },
    loginLockedUntil(keys, now) {
      for (const key of keys) {
        const r = failures.get(key);
        if (r?.locked_until != null && Date.parse(r.locked_until) > now.getTime()) return r.locked_until;
      }
      return null;
    },
    noteLoginFailure: db.transaction((req: { keys: readonly { key: string; max: number }[]; now: Date; windowMs: number; lockMs: number }) => {
      const locked: string[] = [];
      for (const { key, max } of req.keys) {
        const { row, lockNow } = nextFailure(failures.get(key), max, req.now, req.windowMs, req.lockMs);
        putFailures.run({ key, failures: row.failures, windowStart: row.window_start, lockedUntil: row.locked_until });
        if (lockNow) locked.push(key);
      }
      return locked;
    }),
    clearLoginFailures(keys) {
      for (const key of keys) clearFailures.run(key);
    },
  };
}
