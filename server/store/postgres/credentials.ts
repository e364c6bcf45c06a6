import { hashSecret, newCredential, secretMatches, splitCredential } from '../../secrets.js';
import { secretState } from '../credentials.js';
import type { SecretRow } from '../credentials.js';
import type { ApiRole, AgentAuth, Credentials } from '../types.js';
import type { PgDatabase } from './db.js';
import { createLookupBatcher } from './lookup-batcher.js';

/** Connections of the token pool (see store.ts) and the tokens one lookup checks at most. */
const TOKEN_LOOKUPS_AT_ONCE = 2;
const TOKENS_PER_LOOKUP = 500;

/**
 * Enrolment secrets, agent tokens and API tokens on PostgreSQL; only hashes of them are stored.
 * Tokens are checked on `auth`, a small pool of their own, so that a reconnect storm's thousands
 * of lookups never wait behind ingest transactions holding the main pool (nor starve them).
 * Agent tokens asked for together are read together (see lookup-batcher.ts): a storm queues in
 * memory, a few hundred to a statement, instead of timing out waiting for a pooled connection.
 */
export function createPgCredentials(db: PgDatabase, auth: PgDatabase = db): Credentials {
  const agentTokens = createLookupBatcher<string, { token_hash: Buffer; revoked_at: string | null }>(
    async (ids) => {
      const rows = await auth.rows<{ id: string; token_hash: Buffer; revoked_at: string | null }>('SELECT id, token_hash, revoked_at FROM hosts WHERE id = ANY($1::text[])', [ids]);
      return new Map(rows.map((r) => [r.id, r]));
    },
    { concurrency: TOKEN_LOOKUPS_AT_ONCE, maxKeys: TOKENS_PER_LOOKUP },
  );
  return {
    async createEnrollSecret(now, limits = {}) {
      const c = newCredential('qse');
      await db.run('INSERT INTO enroll_secrets (id, hash, created_at, expires_at, max_uses) VALUES ($1, $2, $3, $4, $5)', [
        c.id,
        c.hash,
        now.toISOString(),
        limits.expiresAt?.toISOString() ?? null,
        limits.maxUses ?? null,
      ]);
      return c.text;
    },
    // One statement checks the secret and counts its use: its row is locked only for that
    // statement's commit, not across round trips, so 50 uses stay 50 across nodes while a fleet
    // enrolling at once does not queue behind one row (5,000 at once waited 31 ms each on the
    // transaction's lock). The stored hash is compared in SQL: it is the sha256 of the presented
    // secret, which nobody can steer byte by byte, so the comparison's timing tells nothing.
    async enrollAgent(secretText, hostname, now, machineId) {
      const parts = splitCredential(secretText, 'qse');
      if (parts === null) return null;
      const c = newCredential('qsa');
      const at = now.toISOString();
      const enrolled = await db.row<{ id: string }>(
        `WITH used AS (
           UPDATE enroll_secrets SET uses = uses + 1
           WHERE id = $1 AND hash = $2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3) AND (max_uses IS NULL OR uses < max_uses)
           RETURNING id)
         INSERT INTO hosts (id, token_hash, hostname, enrolled_at, machine_id, status) SELECT $4, $5, $6, $3, $7, 'enrolled' FROM used RETURNING id`,
        [parts.id, hashSecret(parts.secret), at, c.id, c.hash, hostname, machineId ?? null],
      );
      return enrolled === undefined ? null : { agentId: c.id, token: c.text };
    },
    async listEnrollSecrets(now) {
      const rows = await db.rows<Omit<SecretRow, 'hash'> & { id: string; created_at: string }>(
        'SELECT id, created_at, expires_at, max_uses, uses, revoked_at FROM enroll_secrets ORDER BY created_at, id',
      );
      return rows.map((r) => ({ id: r.id, createdAt: r.created_at, expiresAt: r.expires_at, maxUses: r.max_uses, uses: r.uses, revokedAt: r.revoked_at, state: secretState(r, now) }));
    },
    async revokeEnrollSecret(id, now) {
      return (await db.run('UPDATE enroll_secrets SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [now.toISOString(), id])) > 0;
    },
    async listApiTokens() {
      // A user's token carries the user's role as it is now.
      const rows = await db.rows<{ id: string; role: ApiRole; name: string | null; user_name: string | null; created_at: string; revoked_at: string | null }>(
        'SELECT t.id, coalesce(u.role, t.role) AS role, t.name, t.user_name, t.created_at, t.revoked_at FROM api_tokens t LEFT JOIN users u ON u.name = t.user_name ORDER BY t.created_at, t.id',
      );
      return rows.map((r) => ({ id: r.id, role: r.role, name: r.name, user: r.user_name, createdAt: r.created_at, revokedAt: r.revoked_at }));
    },
    async revokeApiToken(id, now) {
      return (await db.run('UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [now.toISOString(), id])) > 0;
    },
    async authenticateAgent(tokenText): Promise<AgentAuth> {
      const parts = splitCredential(tokenText, 'qsa');
      if (parts === null) return { ok: false, reason: 'invalid' };
      const row = await agentTokens.get(parts.id);
      if (row === undefined || !secretMatches(parts.secret, row.token_hash)) return { ok: false, reason: 'invalid' };
      if (row.revoked_at !== null) return { ok: false, reason: 'revoked' };
      return { ok: true, agentId: parts.id };
    },
    async revokeAgent(agentId, now) {
      return (await db.run('UPDATE hosts SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [now.toISOString(), agentId])) > 0;
    },
    async createApiToken(role, now, name) {
      const c = newCredential('qst');
      await db.run('INSERT INTO api_tokens (id, hash, role, created_at, name) VALUES ($1, $2, $3, $4, $5)', [c.id, c.hash, role, now.toISOString(), name ?? null]);
      return c.text;
    },
    async createUserToken(user, now, name) {
      const c = newCredential('qst');
      const inserted = await db.run(
        'INSERT INTO api_tokens (id, hash, role, created_at, name, user_name) SELECT $1, $2, u.role, $3, $4, u.name FROM users u WHERE u.name = $5',
        [c.id, c.hash, now.toISOString(), name ?? null, user],
      );
      return inserted === 0 ? null : c.text;
    },
    async authenticateApiToken(tokenText) {
      const parts = splitCredential(tokenText, 'qst');
      if (parts === null) return null;
      const row = await auth.row<{ hash: Buffer; role: ApiRole; revoked_at: string | null; name: string | null; user_name: string | null; user_role: ApiRole | null; disabled_at: string | null }>(
        'SELECT t.hash, t.role, t.revoked_at, t.name, t.user_name, u.role AS user_role, u.disabled_at FROM api_tokens t LEFT JOIN users u ON u.name = t.user_name WHERE t.id = $1',
        [parts.id],
      );
      if (row === undefined || row.revoked_at !== null || !secretMatches(parts.secret, row.hash)) return null;
      if (row.user_name === null) return { role: row.role, tokenId: parts.id, name: row.name, user: null };
      // A disabled user's tokens stop with the user; the audit log names the user.
      if (row.disabled_at !== null || row.user_role === null) return null;
      return { role: row.user_role, tokenId: parts.id, name: row.name === null ? row.user_name : `${row.user_name} (${row.name})`, user: row.user_name };
    },
  };
}
