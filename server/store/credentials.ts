import type { Database as Db } from 'better-sqlite3';
import { newCredential, secretMatches, splitCredential } from '../secrets.js';
import type { Synchronous } from './async-adapter.js';
import type { ApiRole, AgentAuth, Credentials } from './types.js';

interface SecretRow { hash: Buffer; revoked_at: string | null }

/** Enrolment secrets, agent tokens and API tokens; only hashes of them are ever stored. */
export function createCredentials(db: Db): Synchronous<Credentials> {
  const insertSecret = db.prepare('INSERT INTO enroll_secrets (id, hash, created_at) VALUES (?, ?, ?)');
  const getSecret = db.prepare<[string], SecretRow>('SELECT hash, revoked_at FROM enroll_secrets WHERE id = ?');
  const insertHost = db.prepare(`INSERT INTO hosts (id, token_hash, hostname, enrolled_at, machine_id, status) VALUES (?, ?, ?, ?, ?, 'enrolled')`);
  const getHostToken = db.prepare<[string], { token_hash: Buffer; revoked_at: string | null }>('SELECT token_hash, revoked_at FROM hosts WHERE id = ?');
  const revokeHost = db.prepare('UPDATE hosts SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
  const insertToken = db.prepare('INSERT INTO api_tokens (id, hash, role, created_at, name) VALUES (?, ?, ?, ?, ?)');
  const getToken = db.prepare<[string], { hash: Buffer; role: ApiRole; revoked_at: string | null; name: string | null }>('SELECT hash, role, revoked_at, name FROM api_tokens WHERE id = ?');

  return {
    createEnrollSecret(now) {
      const c = newCredential('qse');
      insertSecret.run(c.id, c.hash, now.toISOString());
      return c.text;
    },
    enrollAgent(secretText, hostname, now, machineId) {
      const parts = splitCredential(secretText, 'qse');
      if (parts === null) return null;
      const row = getSecret.get(parts.id);
      if (row === undefined || row.revoked_at !== null || !secretMatches(parts.secret, row.hash)) return null;
      const c = newCredential('qsa');
      insertHost.run(c.id, c.hash, hostname, now.toISOString(), machineId ?? null);
      return { agentId: c.id, token: c.text };
    },
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
      insertToken.run(c.id, c.hash, role, now.toISOString(), name ?? null);
      return c.text;
    },
    authenticateApiToken(tokenText) {
      const parts = splitCredential(tokenText, 'qst');
      if (parts === null) return null;
      const row = getToken.get(parts.id);
      if (row === undefined || row.revoked_at !== null || !secretMatches(parts.secret, row.hash)) return null;
      return { role: row.role, tokenId: parts.id, name: row.name };
    },
  };
}
