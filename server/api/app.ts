// The HTTP API as a Hono app built from plain parameters: testable with app.request(), no socket.
// One file per resource registers its routes; the order below is the order requests meet them
// (the agent's and the open routes come before the API token check).
import { Hono } from 'hono';
import { getCookie } from 'hono/cookie';
import { CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE, fromSameOrigin } from '../../shared/console.js';
import { QuicksandError, isQuicksandError } from '../../shared/errors.js';
import type { ErrorCode } from '../../shared/errors.js';
import { tokensEqual } from '../secrets.js';
import { agentRoutes } from './agent.js';
import { baselineRoutes } from './baselines.js';
import { containerRoutes } from './containers.js';
import type { AppDeps, Env } from './context.js';
import { credentialRoutes } from './credentials.js';
import { enrollRoutes } from './enroll.js';
import { exportRoutes } from './exports.js';
import { limitBodies, securityHeaders } from './guards.js';
import { healthRoutes } from './health.js';
import { hostRoutes } from './hosts.js';
import { OPERATIONS, openApiDocument } from './openapi.js';
import { imageRoutes } from './images.js';
import { ruleRoutes } from './rules.js';
import { sinkRoutes } from './sinks.js';
import { triageRoutes } from './triage.js';

export type { AppDeps } from './context.js';

// The one place error codes become HTTP statuses.
const STATUS: Partial<Record<ErrorCode, 400 | 401 | 403 | 404 | 409 | 413 | 429 | 503>> = {
  QUERY_INVALID: 400,
  BODY_INVALID: 400,
  ALERT_SINK_INVALID: 400,
  RULES_INVALID: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_SCHEMA_VERSION: 400,
  MANIFEST_UNREADABLE: 400,
  USAGE: 400,
  API_TOKEN_INVALID: 401,
  AGENT_TOKEN_INVALID: 401,
  AGENT_TOKEN_REVOKED: 401,
  ENROLL_REFUSED: 403,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  BODY_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  SERVER_BUSY: 503,
  NOT_READY: 503,
};

export function createApp(deps: AppDeps): Hono<Env> {
  const { store } = deps;
  const app = new Hono<Env>();

  app.onError((err, c) => {
    if (isQuicksandError(err)) {
      const status = STATUS[err.code] ?? 500;
      return c.json({ error: { code: err.code, message: err.message } }, status);
    }
    return c.json({ error: { code: 'INTERNAL', message: 'internal error' } }, 500);
  });
  app.notFound((c) => c.json({ error: { code: 'NOT_FOUND', message: `no route ${c.req.method} ${c.req.path}` } }, 404));
  app.use('*', securityHeaders());
  app.use('*', limitBodies());

  healthRoutes(app, deps);
  enrollRoutes(app, deps);
  agentRoutes(app, deps);
  // Open, like the source it describes: the console links it.
  app.get(OPERATIONS.openapi.path, (c) => c.json(openApiDocument()));

  // Every other /api/v1 route needs an API token, or the console's session cookie.
  app.use('/api/v1/*', async (c, next) => {
    const header = c.req.header('authorization');
    const cookie = header === undefined ? getCookie(c, SESSION_COOKIE) : undefined;
    if (cookie !== undefined) {
      const session = await store.authenticateSession(cookie, deps.clock());
      if (session === null) throw new QuicksandError('API_TOKEN_INVALID', 'the console session ended: log in again');
      // A cookie rides along with any request the browser makes: a state change must come from
      // a page of this origin and carry the session's CSRF token, whatever its content type.
      if (!SAFE_METHODS.includes(c.req.method) && (!fromSameOrigin(c.req.raw.headers, c.req.url) || !tokensEqual(c.req.header(CSRF_HEADER) ?? '', session.csrf))) {
        throw new QuicksandError('FORBIDDEN', `a state-changing request with the session cookie must come from this origin and carry the ${CSRF_HEADER} header`);
      }
      c.set('role', session.role);
      c.set('tokenId', `user:${session.user}`);
      c.set('tokenName', session.user);
      await next();
      return;
    }
    const m = /^Bearer (\S+)$/.exec(header ?? '');
    const auth = m === null ? null : await store.authenticateApiToken(m[1]!);
    if (auth === null) {
      c.header('WWW-Authenticate', 'Bearer');
      throw new QuicksandError('API_TOKEN_INVALID', 'missing, unknown or revoked API token: create one with `quicksand-server token create --role auditor`');
    }
    c.set('role', auth.role);
    c.set('tokenId', auth.tokenId);
    c.set('tokenName', auth.name);
    await next();
  });

  hostRoutes(app, deps);
  containerRoutes(app, deps);
  imageRoutes(app, deps);
  sinkRoutes(app, deps);
  triageRoutes(app, deps);
  baselineRoutes(app, deps);
  ruleRoutes(app, deps);
  credentialRoutes(app, deps);
  exportRoutes(app, deps);

  return app;
}
