// Bearer credentials: `<prefix>.<id>.<secret>`. The id finds the row, the secret is compared by
// hash. A plain sha256 is enough (no slow KDF): the secrets are 256 random bits, not passwords.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export type CredentialPrefix = 'qse' | 'qsa' | 'qst' | 'qss'; // enrolment secret, agent token, API token, console session

export interface NewCredential {
  id: string;
  hash: Buffer;
  /** Shown once to whoever asked for it; only `hash` is stored. */
  text: string;
}

export function newCredential(prefix: CredentialPrefix): NewCredential {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, hash: hashSecret(secret), text: `${prefix}.${id}.${secret}` };
}

export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/** Splits a presented credential; null when it is not of the expected shape. */
export function splitCredential(text: string, prefix: CredentialPrefix): { id: string; secret: string } | null {
  const m = /^([a-z]{3})\.([0-9a-f]{16})\.([A-Za-z0-9_-]{20,100})$/.exec(text);
  if (m === null || m[1] !== prefix) return null;
  return { id: m[2]!, secret: m[3]! };
}

/** Constant-time comparison of a presented secret with a stored hash. */
export function secretMatches(secret: string, storedHash: Buffer): boolean {
  const presented = hashSecret(secret);
  return presented.length === storedHash.length && timingSafeEqual(presented, storedHash);
}
