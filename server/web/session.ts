// Who is behind a console request, and whether a state change may go ahead: the session cookie
// (`__Host-`, HttpOnly, Secure, SameSite=Strict), the same-origin check on every POST whatever its
// body, and the session's synchronizer token in every form.
import type { Context, MiddlewareHandler } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { CSRF_FIELD, SAFE_METHODS, SESSION_COOKIE, fromSameOrigin } from '../../shared/console.js';
import type { ApiRoleName } from '../../shared/api.js';
import { tokensEqual } from '../secrets.js';
import type { SessionUser, Store } from '../store/types.js';

export interface SessionPolicy {
  idleMs: number;
  absoluteMs: number;
  /** Failed logins: per account, per address, within `windowMs`; then locked for `lockMs`. */
  accountMax: number;
  addressMax: number;
  windowMs: number;
  lockMs: number;
}

export const DEFAULT_SESSION_POLICY: SessionPolicy = {
  idleMs: 30 * 60_000,
  absoluteMs: 12 * 60 * 60_000,
  accountMax: 5,
  addressMax: 50,
  windowMs: 15 * 60_000,
  lockMs: 15 * 60_000,
};

/** A console form's body at most (the rules editor's document is the largest). */
export const FORM_LIMIT = 1024 * 1024;

export type WebEnv = { Variables: { session: SessionUser | null; form: Record<string, string> } };

export function setSessionCookie(c: Context<WebEnv>, token: string, policy: SessionPolicy): void {
  setCookie(c, SESSION_COOKIE, token, { httpOnly: true, secure: true, sameSite: 'Strict', path: '/', maxAge: Math.floor(policy.absoluteMs / 1000) });
}

export function clearSessionCookie(c: Context<WebEnv>): void {
  deleteCookie(c, SESSION_COOKIE, { secure: true, path: '/' });
}

export function sessionCookie(c: Context<WebEnv>): string | undefined {
  return getCookie(c, SESSION_COOKIE);
}

/**
 * Reads the session, and refuses a state change that is not from this origin (any content type)
 * or, with a session, whose form lacks the session's token. A form body is parsed once, bounded.
 */
export function sessions(store: Store, clock: () => Date): MiddlewareHandler<WebEnv> {
  return async (c, next) => {
    const cookie = sessionCookie(c);
    const session = cookie === undefined ? null : await store.authenticateSession(cookie, clock());
    c.set('session', session);
    c.set('form', {});
    if (!SAFE_METHODS.includes(c.req.method)) {
      if (!fromSameOrigin(c.req.raw.headers, c.req.url)) return c.text('Forbidden: this form must be sent from a page of this console', 403);
      const type = c.req.header('content-type') ?? '';
      if (!/^application\/x-www-form-urlencoded\b/i.test(type)) return c.text('Unsupported: console forms are sent as application/x-www-form-urlencoded', 415);
      const form: Record<string, string> = {};
      for (const [k, v] of new URLSearchParams(await c.req.text())) form[k] = v;
      c.set('form', form);
      // The login form has no session yet (a cookie it came with is ended there, not trusted).
      if (session !== null && c.req.path !== '/login' && !tokensEqual(form[CSRF_FIELD] ?? '', session.csrf)) return c.text('Forbidden: the form is from another session; reload the page', 403);
    }
    await next();
  };
}

/** The session, or a redirect to the login page (GET) / 401 (anything else). */
export function signedIn(c: Context<WebEnv>): SessionUser | Response {
  const s = c.get('session');
  if (s !== null) return s;
  if (c.req.method === 'GET') return c.redirect(`/login?next=${encodeURIComponent(c.req.path)}`, 303);
  return c.text('Unauthorized: log in first', 401);
}

export function mayTriage(role: ApiRoleName): boolean {
  return role === 'admin' || role === 'analyst';
}
