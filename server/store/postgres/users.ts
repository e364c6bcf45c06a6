// Console users, sessions and the failed-login counters on PostgreSQL (see ../users.ts).
import { randomBytes } from 'node:crypto';
import { newCredential, secretMatches, splitCredential } from '../../secrets.js';
import { TOUCH_EVERY_MS, info, nextFailure, sessionEnded, sessionUser } from '../users.js';
import type { FailureRow, SessionRow, UserRow } from '../users.js';
import type { Users } from '../types.js';
import type { PgDatabase, Sql } from './db.js';

const SESSION = 'SELECT s.*, u.role, u.disabled_at FROM sessions s JOIN users u ON u.name = s.user_name WHERE s.id = $1';
const endSession = (q: Sql, id: string): Promise<number> => q.run('DELETE FROM sessions WHERE id = $1', [id]);

export function createPgUsers(db: PgDatabase): Users {
  return {
    createUser: async ({ name, role, passwordHash, now }) =>
      (await db.run('INSERT INTO users (name, role, password_hash, created_at, password_changed_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO NOTHING', [name, role, passwordHash, now.toISOString()])) > 0,
    listUsers: async () => (await db.rows<UserRow>('SELECT * FROM users ORDER BY name')).map(info),
    async userForLogin(name) {
      const r = await db.row<UserRow>('SELECT * FROM users WHERE name = $1', [name]);
      return r === undefined ? null : { ...info(r), passwordHash: r.password_hash };
    },
    setUserDisabled: (name, disabled, now) =>
      db.tx(async (q) => {
        if (!disabled) return (await q.run('UPDATE users SET disabled_at = NULL WHERE name = $1 AND disabled_at IS NOT NULL', [name])) > 0;
        if ((await q.run('UPDATE users SET disabled_at = $1 WHERE name = $2 AND disabled_at IS NULL', [now.toISOString(), name])) === 0) return false;
        await q.run('DELETE FROM sessions WHERE user_name = $1', [name]);
        return true;
      }),
    setUserRole: (name, role) =>
      db.tx(async (q) => {
        const before = (await q.row<{ role: UserRow['role'] }>('SELECT role FROM users WHERE name = $1 FOR UPDATE', [name]))?.role ?? null;
        if (before !== null && before !== role) await q.run('UPDATE users SET role = $1 WHERE name = $2', [role, name]);
        return before;
      }),
    setPassword: (name, passwordHash, now) =>
      db.tx(async (q) => {
        if ((await q.run('UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE name = $3', [passwordHash, now.toISOString(), name])) === 0) return false;
        await q.run('DELETE FROM sessions WHERE user_name = $1', [name]);
        return true;
      }),
    createSession: (req) =>
      db.tx(async (q) => {
        // Whatever session the browser came with ends: the login never keeps an id it did not make.
        if (req.replaces !== undefined) {
          const old = splitCredential(req.replaces, 'qss');
          if (old !== null) await endSession(q, old.id);
        }
        const c = newCredential('qss');
        const csrf = randomBytes(32).toString('base64url');
        const now = req.now.toISOString();
        const expiresAt = new Date(req.now.getTime() + req.absoluteMs).toISOString();
        await q.run('INSERT INTO sessions (id, hash, user_name, csrf, created_at, last_seen_at, expires_at, idle_ms) VALUES ($1, $2, $3, $4, $5, $5, $6, $7)', [c.id, c.hash, req.user, csrf, now, expiresAt, req.idleMs]);
        const user = await q.row<{ role: UserRow['role'] }>('UPDATE users SET last_login_at = $1 WHERE name = $2 RETURNING role', [now, req.user]);
        return { token: c.text, session: sessionUser({ id: c.id, user_name: req.user, role: user!.role, csrf, created_at: now, expires_at: expiresAt }) };
      }),
    async authenticateSession(token, now) {
      const parts = splitCredential(token, 'qss');
      if (parts === null) return null;
      const row = await db.row<SessionRow>(SESSION, [parts.id]);
      if (row === undefined || !secretMatches(parts.secret, row.hash)) return null;
      if (sessionEnded(row, now)) {
        await endSession(db, row.id);
        return null;
      }
      if (row.disabled_at !== null) return null;
      if (now.getTime() - Date.parse(row.last_seen_at) >= TOUCH_EVERY_MS) await db.run('UPDATE sessions SET last_seen_at = $1 WHERE id = $2', [now.toISOString(), row.id]);
      return sessionUser(row);
    },
    async deleteSession(token) {
      const parts = splitCredential(token, 'qss');
      if (parts === null) return false;
      const row = await db.row<SessionRow>(SESSION, [parts.id]);
      if (row === undefined || !secretMatches(parts.secret, row.hash)) return false;
      return (await endSession(db, row.id)) > 0;
    },
    async loginLockedUntil(keys, now) {
      for (const key of keys) {
        const r = await db.row<FailureRow>('SELECT failures, window_start, locked_until FROM login_failures WHERE key = $1', [key]);
        if (r?.locked_until != null && Date.parse(r.locked_until) > now.getTime()) return r.locked_until;
      }
      return null;
    },
    noteLoginFailure: (req) =>
      db.tx(async (q) => {
        const locked: string[] = [];
        for (const { key, max } of req.keys) {
          // Locked: two nodes counting one key's failures at once count both.
          await q.run('INSERT INTO login_failures (key, failures, window_start) VALUES ($1, 0, $2) ON CONFLICT (key) DO NOTHING', [key, new Date(0).toISOString()]);
          const before = await q.row<FailureRow>('SELECT failures, window_start, locked_until FROM login_failures WHERE key = $1 FOR UPDATE', [key]);
          const { row, lockNow } = nextFailure(before?.failures === 0 ? undefined : before, max, req.now, req.windowMs, req.lockMs);
          await q.run('UPDATE login_failures SET failures = $2, window_start = $3, locked_until = $4 WHERE key = $1', [key, row.failures, row.window_start, row.locked_until]);
          if (lockNow) locked.push(key);
        }
        return locked;
      }),
    async clearLoginFailures(keys) {
      if (keys.length > 0) await db.run('DELETE FROM login_failures WHERE key = ANY($1::text[])', [keys]);
    },
  };
}
