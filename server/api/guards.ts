// What every response and every request body gets before any route sees it: the security
// headers, and a body limit that fits the route, refused with 413 from Content-Length before the
// body is read, and while it streams when there is none.
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Env } from './context.js';
import { SECURITY_HEADERS } from '../../shared/security-headers.js';

export { SECURITY_HEADERS };

const MiB = 1024 * 1024;
/** Every JSON route: enrolment, labels, rules, sinks, approvals. */
export const BODY_LIMIT = 1 * MiB;
/**
 * An image manifest. A real debootstrap root's manifest takes 212 bytes per path (6,141 paths in
 * 1.3 MB); 256 MiB holds a million-path image with a fifth to spare.
 */
export const MANIFEST_BODY_LIMIT = 256 * MiB;
/** An observation upload carries two manifests of one host. */
export const OBSERVATION_BODY_LIMIT = 2 * MANIFEST_BODY_LIMIT;

/** The limit of a request's route. */
export function bodyLimitFor(method: string, path: string): number {
  if (method === 'POST' && path === '/api/v1/images') return MANIFEST_BODY_LIMIT;
  if (method === 'POST' && /^\/api\/v1\/agent\/baselines\/[^/]+\/observation$/.test(path)) return OBSERVATION_BODY_LIMIT;
  return BODY_LIMIT;
}

const tooLarge = (limit: number) => (c: Context<Env>) => {
  // Close the connection: the rest of the body is not worth reading to keep it alive.
  c.header('Connection', 'close');
  return c.json({ error: { code: 'BODY_TOO_LARGE', message: `body: at most ${limit} bytes on ${c.req.method} ${c.req.path}` } }, 413);
};

export function limitBodies(): MiddlewareHandler<Env> {
  const limiters = new Map<number, MiddlewareHandler<Env>>();
  for (const limit of [BODY_LIMIT, MANIFEST_BODY_LIMIT, OBSERVATION_BODY_LIMIT]) limiters.set(limit, bodyLimit({ maxSize: limit, onError: tooLarge(limit) }));
  return (c, next) => limiters.get(bodyLimitFor(c.req.method, c.req.path))!(c, next);
}

/** Sets SECURITY_HEADERS on every response, errors included. */
export function securityHeaders(): MiddlewareHandler<Env> {
  return async (c, next) => {
    await next();
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) if (!c.res.headers.has(name)) c.res.headers.set(name, value);
  };
}
