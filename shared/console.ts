// What the console's pages and the JSON API agree on about a browser session. Pure.

/** `__Host-`: Secure, Path=/, no Domain — the browser sends it back to this origin only. */
export const SESSION_COOKIE = '__Host-quicksand-session';
/** The header a script sends the session's CSRF token in (forms send the field `_csrf`). */
export const CSRF_HEADER = 'x-csrf-token';
export const CSRF_FIELD = '_csrf';

/**
 * Whether a state-changing request comes from a page of this origin: `Sec-Fetch-Site:
 * same-origin`, or an `Origin` equal to the request's own. Hono's `csrf` middleware asks this only
 * of form and text bodies; with a cookie, every content type must pass.
 */
export function fromSameOrigin(headers: { get(name: string): string | null }, requestUrl: string): boolean {
  const site = headers.get('sec-fetch-site');
  if (site !== null) return site === 'same-origin';
  const origin = headers.get('origin');
  return origin !== null && origin === new URL(requestUrl).origin;
}

export const SAFE_METHODS: readonly string[] = ['GET', 'HEAD', 'OPTIONS'];
