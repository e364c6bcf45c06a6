// The login page and its POST: throttled per account and per address (a lockout is in the audit
// log), the password checked with scrypt, a new session whatever cookie the browser came with.
import type { Context } from 'hono';
import { MAX_PASSWORD, hashPassword, verifyPassword } from '../passwords.js';
import type { Store } from '../store/types.js';
import { Layout } from './layout.js';
import { clearSessionCookie, sessionCookie, setSessionCookie } from './session.js';
import type { SessionPolicy, WebEnv } from './session.js';

// Checked when the name is unknown, so a wrong name costs the time a wrong password does.
let dummyHash: Promise<string> | undefined;

/** Only a path of this console: `//evil` or `https://…` would send the user elsewhere. */
export function safeNext(next: string | undefined): string {
  return next !== undefined && /^\/(?![/\\])[\x21-\x7e]{0,500}$/.test(next) ? next : '/';
}

export function LoginPage(props: { next: string; error?: string; name?: string }) {
  return (
    <Layout title="Log in" session={null}>
      {props.error !== undefined && <p class="error" role="alert">{props.error}</p>}
      <form method="post" action="/login">
        <input type="hidden" name="next" value={props.next} />
        <p><label for="name">User name</label><br /><input id="name" name="name" autocomplete="username" required maxlength={64} value={props.name ?? ''} autofocus /></p>
        <p><label for="password">Password</label><br /><input id="password" name="password" type="password" autocomplete="current-password" required maxlength={MAX_PASSWORD} /></p>
        <p><button type="submit">Log in</button></p>
      </form>
    </Layout>
  );
}

export async function login(c: Context<WebEnv>, deps: { store: Store; clock: () => Date; policy: SessionPolicy; address: string }): Promise<Response> {
  const { store, clock, policy } = deps;
  const form = c.get('form');
  const name = (form.name ?? '').trim().slice(0, 64);
  const password = form.password ?? '';
  const next = safeNext(form.next);
  const keys = [`account:${name}`, `address:${deps.address}`];
  const refuse = (status: 401 | 429, error: string) => c.html(<LoginPage next={next} error={error} name={name} />, status);
  const lockedUntil = await store.loginLockedUntil(keys, clock());
  if (lockedUntil !== null) return refuse(429, `Too many failed logins: try again after ${lockedUntil}.`);
  const user = await store.userForLogin(name);
  const ok = user !== null ? await verifyPassword(password, user.passwordHash) : (await verifyPassword(password, await (dummyHash ??= hashPassword('not a password'))), false);
  const now = clock();
  if (!ok || user === null || user.disabledAt !== null) {
    const locked = await store.noteLoginFailure({ keys: [{ key: keys[0]!, max: policy.accountMax }, { key: keys[1]!, max: policy.addressMax }], now, windowMs: policy.windowMs, lockMs: policy.lockMs });
    for (const key of locked) {
      await store.triage.audit({ actor: { id: 'system', role: 'system' }, action: 'login-lockout', target: key, detail: { until: new Date(now.getTime() + policy.lockMs).toISOString(), address: deps.address }, now });
    }
    if (locked.length > 0) return refuse(429, `Too many failed logins: try again after ${new Date(now.getTime() + policy.lockMs).toISOString()}.`);
    return refuse(401, 'Wrong user name or password, or the user is disabled.');
  }
  await store.clearLoginFailures([keys[0]!]);
  const old = sessionCookie(c);
  const { token } = await store.createSession({ user: user.name, now, idleMs: policy.idleMs, absoluteMs: policy.absoluteMs, ...(old === undefined ? {} : { replaces: old }) });
  await store.triage.audit({ actor: { id: `user:${user.name}`, role: user.role, name: user.name }, action: 'login', target: `user:${user.name}`, detail: { address: deps.address }, now });
  setSessionCookie(c, token, policy);
  return c.redirect(next, 303);
}

export async function logout(c: Context<WebEnv>, store: Store, clock: () => Date): Promise<Response> {
  const cookie = sessionCookie(c);
  const s = c.get('session');
  if (cookie !== undefined) await store.deleteSession(cookie);
  if (s !== null) await store.triage.audit({ actor: { id: `user:${s.user}`, role: s.role, name: s.user }, action: 'logout', target: `user:${s.user}`, now: clock() });
  clearSessionCookie(c);
  return c.redirect('/login', 303);
}
