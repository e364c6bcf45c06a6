// The credentials' and users' changes, each with its audit entry, as the API, the console and the
// server CLI make them: one place, so that who did what is written the same way whoever asks.
import { QuicksandError } from '../../shared/errors.js';
import type { ApiRoleName } from '../../shared/api.js';
import { parseDuration } from '../../shared/duration.js';
import { USER_NAME_RE, generatePassword, hashPassword, passwordProblem } from '../passwords.js';
import { splitCredential } from '../secrets.js';
import type { Actor, Store } from '../store/types.js';

export interface CreatedSecret {
  id: string;
  secret: string;
  expiresAt: string | null;
  maxUses: number | null;
}

/** A new enrolment secret (its text returned once), audited. `expires`: a duration like `7d`. */
export async function createEnrollSecretAudited(store: Store, req: { expires?: string | undefined; uses?: number | undefined; actor: Actor; now: Date }): Promise<CreatedSecret> {
  const ms = req.expires === undefined ? null : parseDuration(req.expires);
  if (ms === null && req.expires !== undefined) throw new QuicksandError('BODY_INVALID', `expires: expected a duration like 24h, 7d or 1h30m, got "${req.expires}"`);
  const expiresAt = ms === null ? undefined : new Date(req.now.getTime() + ms);
  const secret = await store.createEnrollSecret(req.now, { ...(expiresAt === undefined ? {} : { expiresAt }), ...(req.uses === undefined ? {} : { maxUses: req.uses }) });
  const id = splitCredential(secret, 'qse')!.id;
  const out = { id, secret, expiresAt: expiresAt?.toISOString() ?? null, maxUses: req.uses ?? null };
  await store.triage.audit({ actor: req.actor, action: 'enroll-secret-create', target: `enroll-secret:${id}`, detail: { expiresAt: out.expiresAt, maxUses: out.maxUses }, now: req.now });
  return out;
}

export async function revokeEnrollSecretAudited(store: Store, id: string, actor: Actor, now: Date): Promise<void> {
  if (!(await store.revokeEnrollSecret(id, now))) throw new QuicksandError('NOT_FOUND', `enrolment secret ${id} is not known or already revoked`);
  await store.triage.audit({ actor, action: 'enroll-secret-revoke', target: `enroll-secret:${id}`, now });
}

/** A token of a console user (its text returned once), audited. */
export async function createUserTokenAudited(store: Store, req: { user: string; name?: string | undefined; actor: Actor; now: Date }): Promise<{ id: string; token: string }> {
  const token = await store.createUserToken(req.user, req.now, req.name);
  if (token === null) throw new QuicksandError('NOT_FOUND', `user ${req.user} is not known`);
  const id = splitCredential(token, 'qst')!.id;
  await store.triage.audit({ actor: req.actor, action: 'token-create', target: `token:${id}`, detail: { user: req.user, name: req.name ?? null }, now: req.now });
  return { id, token };
}

export async function revokeApiTokenAudited(store: Store, id: string, actor: Actor, now: Date): Promise<void> {
  if (!(await store.revokeApiToken(id, now))) throw new QuicksandError('NOT_FOUND', `API token ${id} is not known or already revoked`);
  await store.triage.audit({ actor, action: 'token-revoke', target: `token:${id}`, now });
}

export function checkUserName(name: string | undefined): string {
  if (name === undefined || !USER_NAME_RE.test(name)) throw new QuicksandError('USAGE', `expected a user name of 1 to 64 characters a-z 0-9 . _ - (starting with a letter or digit), got ${JSON.stringify(name ?? '')}`);
  return name;
}

/** The password to set: the one given (checked), or a generated one to show once. */
export function chosenPassword(given: string | undefined): { text: string; generated: boolean } {
  if (given === undefined || given === '') return { text: generatePassword(), generated: true };
  const problem = passwordProblem(given);
  if (problem !== null) throw new QuicksandError('USAGE', problem);
  return { text: given, generated: false };
}

/** Adds a user with the password's scrypt hash, audited. */
export async function addUserAudited(store: Store, req: { name: string; role: ApiRoleName; password: string; actor: Actor; now: Date }): Promise<void> {
  if (!(await store.createUser({ name: req.name, role: req.role, passwordHash: await hashPassword(req.password), now: req.now }))) throw new QuicksandError('CONFLICT', `user ${req.name} exists: set a new password instead`);
  await store.triage.audit({ actor: req.actor, action: 'user-add', target: `user:${req.name}`, detail: { role: req.role }, now: req.now });
}

/** Disables a user (their sessions end) or enables them again, audited. */
export async function setUserDisabledAudited(store: Store, req: { name: string; disabled: boolean; actor: Actor; now: Date }): Promise<void> {
  const verb = req.disabled ? 'disable' : 'enable';
  if (!(await store.setUserDisabled(req.name, req.disabled, req.now))) throw new QuicksandError('NOT_FOUND', `user ${req.name} is not known or already ${verb}d`);
  await store.triage.audit({ actor: req.actor, action: `user-${verb}`, target: `user:${req.name}`, now: req.now });
}

/** Gives a user another role (their sessions and tokens carry it from their next request), audited. */
export async function setUserRoleAudited(store: Store, req: { name: string; role: ApiRoleName; actor: Actor; now: Date }): Promise<void> {
  const before = await store.setUserRole(req.name, req.role);
  if (before === null) throw new QuicksandError('NOT_FOUND', `user ${req.name} is not known`);
  if (before === req.role) throw new QuicksandError('USAGE', `user ${req.name} is already ${req.role}`);
  await store.triage.audit({ actor: req.actor, action: 'user-role', target: `user:${req.name}`, detail: { from: before, role: req.role }, now: req.now });
}

/** A new password (every session of the user ends), audited. */
export async function setPasswordAudited(store: Store, req: { name: string; password: string; actor: Actor; now: Date }): Promise<void> {
  if (!(await store.setPassword(req.name, await hashPassword(req.password), req.now))) throw new QuicksandError('NOT_FOUND', `user ${req.name} is not known`);
  await store.triage.audit({ actor: req.actor, action: 'user-passwd', target: `user:${req.name}`, now: req.now });
}

export const MAX_TOKEN_NAME = 200;

/** A token's name as the audit log shows it (trimmed), or undefined for none. */
export function checkTokenName(text: string | undefined, what: string): string | undefined {
  if (text === undefined) return undefined;
  const name = text.trim();
  if (name === '' || name.length > MAX_TOKEN_NAME || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new QuicksandError('USAGE', `${what}: expected 1 to ${MAX_TOKEN_NAME} characters without control characters, like "Q3 audit, Jane"`);
  }
  return name;
}
