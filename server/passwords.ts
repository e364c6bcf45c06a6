// Console passwords: scrypt at OWASP's cost (N=2^17, r=8, p=1), the asynchronous call so a login
// never blocks the server's thread (about 0.7 s of one core each). Stored as one string that
// names its parameters, so a later cost can be told from this one.
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { ScryptOptions } from 'node:crypto';

export const SCRYPT_PARAMS = { N: 2 ** 17, r: 8, p: 1 } as const;
const KEY_LENGTH = 32;
/** scrypt needs 128·N·r bytes; Node refuses more than 32 MiB unless told. */
const maxmem = (p: { N: number; r: number }): number => 128 * p.N * p.r + 16 * 1024 * 1024;

/** The longest password accepted: scrypt reads it all, and a megabyte of it is no password. */
export const MAX_PASSWORD = 1024;
/** The shortest a chosen password may be (a generated one is longer). */
export const MIN_PASSWORD = 12;

function derive(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  const opts: ScryptOptions = { ...params, maxmem: maxmem(params) };
  return new Promise((resolve, reject) => scrypt(password.normalize('NFC'), salt, KEY_LENGTH, opts, (err, key) => (err === null ? resolve(key) : reject(err))));
}

/** `scrypt$N$r$p$SALT$KEY` (base64url). */
export async function hashPassword(password: string, params: { N: number; r: number; p: number } = SCRYPT_PARAMS): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, params);
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

/** Whether `password` is the one `stored` was made from; false for a malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m = /^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9_-]{16,64})\$([A-Za-z0-9_-]{16,128})$/.exec(stored);
  if (m === null || password.length > MAX_PASSWORD) return false;
  const expected = Buffer.from(m[5]!, 'base64url');
  const key = await derive(password, Buffer.from(m[4]!, 'base64url'), { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]) });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** A password to print once: 128 random bits, readable. */
export function generatePassword(): string {
  return randomBytes(16).toString('base64url');
}

/** Why a chosen password is refused, or null. Pure. */
export function passwordProblem(password: string): string | null {
  if (password.length < MIN_PASSWORD) return `a password needs at least ${MIN_PASSWORD} characters`;
  if (password.length > MAX_PASSWORD) return `a password has at most ${MAX_PASSWORD} characters`;
  if (/[\u0000-\u001f\u007f]/.test(password)) return 'a password may not contain control characters';
  return null;
}

/** A user name: 1-64 of a-z 0-9 . _ - , starting with a letter or digit. Pure. */
export const USER_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
