import type { Database as Db } from 'better-sqlite3';
import { newCredential, secretMatches, splitCredential } from '../secrets.js';
import type { Synchronous } from './async-adapter.js';
import type { ApiRole, AgentAuth, Credentials, EnrollSecretInfo } from './types.js';

export interface SecretRow { hash: Buffer; revoked_at: string | null; expires_at: string | null; max_uses: number | null; uses: number }
interface SecretListRow { id: string; created_at: string; expires_at: string | null; max_uses: number | null; uses: number; revoked_at: string | null }

export function secretState(r: Omit<SecretRow, 'hash'>, now: Date): EnrollSecretInfo['state'] {
  if (r.revoked_at !== null) return 'revoked';
  if (r.expires_at !== null && Date.parse(r.expires_at) <= now.getTime()) return 'expired';
  if (r.max_uses !== null && r.uses >= r.max_uses) return 'used-up';
  return 'active';
}

/** Enrolment secrets, agent tokens and API tokens (a user's or a role's); only hashes of them are ever stored. */
export function createCredentials(db: Db): Synchronous<Credentials> {
  const insertSecret = db.prepare('INSERT INTO enroll_secrets (id, hash, created_at, expires_at, max_uses) VALUES (?, ?, ?, ?, ?)');
  const getSecret = db.prepare<[string], SecretRow>('SELECT hash, revoked_at, expires_at, max_uses, uses FROM enroll_secrets WHERE id = ?');
  const useSecret = db.prepare('UPDATE enroll_secrets SET uses = uses + 1 WHERE id = ? AND (max_uses IS NULL OR uses < max_uses)');
  const listSecrets = db.prepare<[], SecretListRow>('SELECT id, created_at, expires_at, max_uses, uses, revoked_at FROM enroll_secrets ORDER BY created_at, id');
  const revokeSecret = db.prepare('UPDATE enroll_secrets SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
  // A user's token carries the user's role as it is now.
  const listTokens = db.prepare<[], { id: string; role: ApiRole; name: string | null; user_name: string | null; created_at: string; revoked_at: string | null }>(
    'SELECT t.id, coalesce(u.role, t.role) AS role, t.name, t.user_name, t.created_at, t.revoked_at FROM api_tokens t LEFT JOIN users u ON u.name = t.user_name ORDER BY t.created_at, t.id',
  );
  const revokeToken = db.prepare('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
  const insertHost = db.prepare(`INSERT INTO hosts (id, token_hash, hostname, enrolled_at, machine_id, status) VALUES (?, ?, ?, ?, ?, 'enrolled')`);
  const getHostToken = db.prepare<[string], { token_hash: Buffer; revoked_at: string | null }>('SELECT token_hash, revoked_at FROM hosts WHERE id = ?');
  const revokeHost = db.prepare('UPDATE hosts SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
  const insertToken = db.prepare('INSERT INTO api_tokens (id, hash, role, created_at, name, user_name) VALUES (?, ?, ?, ?, ?, ?)');
  const userRole = db.prepare<[string], { role: ApiRole }>('SELECT role FROM users WHERE name = ?');
  const getToken = db.prepare<[string], { hash: Buffer; role: ApiRole; revoked_at: string | null; name: string | null; user_name: string | null; user_role: ApiRole | null; disabled_at: string | null }>(
    'SELECT t.hash, t.role, t.revoked_at, t.name, t.user_name, u.role AS user_role, u.disabled_at FROM api_tokens t LEFT JOIN users u ON u.name = t.user_name WHERE t.id = ?',
  );

  return {
    createEnrollSecret(now, limits = {}) {
      const c = newCredential('qse');
      insertSecret.run(c.id, c.hash, now.toISOString(), limits.expiresAt?.toISOString() ?? null, limits.maxUses ?? null);
      return c.text;
    },
    // IMMEDIATE: the use is counted in the transaction that checked it, so 50 uses stay 50.
    enrollAgent: db.transaction((secretText: string, hostname: string, now: Date, machineId?: string) => {
      const parts = splitCredential(secretText, 'qse');
      if (parts === null) return null;
      const row = getSecret.get(parts.id);
      if (row === undefined || !secretMatches(parts.secret, row.hash) || secretState(row, now) !== 'active') return null;
      if (useSecret.run(parts.id).changes === 0) return null;
      const c = newCredential('qsa');
      insertHost.run(c.id, c.hash, hostname, now.toISOString(), machineId ?? null);
      return { agentId: c.id, token: c.text };
    }).immediate,
    listEnrollSecrets: (now) =>
      listSecrets.all().map((r) => ({ id: r.id, createdAt: r.created_at, expiresAt: r.expires_at, maxUses: r.max_uses, uses: r.uses, revokedAt: r.revoked_at, state: secretState(r, now) })),
    revokeEnrollSecret: (id, now) => revokeSecret.run(now.toISOString(), id).changes > 0,
    listApiTokens: () => listTokens.all().map((r) => ({ id: r.id, role: r.role, name: r.name, user: r.user_name, createdAt: r.created_at, revokedAt: r.revoked_at })),
    revokeApiToken: (id, now) => revokeToken.run(now.toISOString(), id).changes > 0,
    authenticateAgent(tokenText): AgentAuth {
      const parts = splitCredential(tokenText, 'qsa');
      if (parts === null) return { ok: false, reason: 'invalid' };
      const row = getHostToken.get(parts.id);
      if (row === undefined || !secretMatches(parts.secret, row.token_hash)) return { ok: false, reason: 'invalid' };
      if (row.revoked_at !== null) return { ok: false, reason: 'revoked' };
      return { ok: true, agentId: parts.id };
    },
    revokeAgent(agentId, now) {
      return revokeHost.run(now.toISOString(), agentId).changes > 0;
    },
    createApiToken(role, now, name) {
      const c = newCredential('qst');
      insertToken.run(c.id, c.hash, role, now.toISOString(), name ?? null, null);
      return c.text;
    },
    createUserToken(user, now, name) {
      const u = userRole.get(user);
      if (u === undefined) return null;
      const c = newCredential('qst');
      insertToken.run(c.id, c.hash, u.role, now.toISOString(), name ?? null, user);
      return c.text;
    },
    authenticateApiToken(tokenText) {
      const parts = splitCredential(tokenText, 'qst');
      if (parts === null) return null;
      const row = getToken.get(parts.id);
      if (row === undefined || row.revoked_at !== null || !secretMatches(parts.secret, row.hash)) return null;
      if (row.user_name === null) return { role: row.role, tokenId: parts.id, name: row.name, user: null };
      // A disabled user's tokens stop with the user; the audit log names the user.
      if (row.disabled_at !== null || row.user_role === null) return null;
      return { role: row.user_role, tokenId: parts.id, name: row.name === null ? row.user_name : `${row.user_name} (${row.name})`, user: row.user_name };
    },
  };
}
