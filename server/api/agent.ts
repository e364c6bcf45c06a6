// The agent's own routes, on its agent token: the re-baseline exchange (upload what the host
// holds, fetch the version to scan against).
import type { Hono } from 'hono';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { observationUploadSchema } from '../../shared/baseline.js';
import { QuicksandError } from '../../shared/errors.js';
import { parseManifest } from '../../shared/manifest.js';
import { jsonBody, numericId, parseWith } from './context.js';
import type { AppDeps, Env } from './context.js';

/** POST /api/v1/agent/baselines/:version/observation, GET /api/v1/agent/baseline. */
export function agentRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  // The agent's own routes: its agent token, never an API token. It speaks for its host only.
  const agentOf = (c: Context<Env>): string => {
    const m = /^Bearer (\S+)$/.exec(c.req.header('authorization') ?? '');
    const auth = m === null ? null : store.authenticateAgent(m[1]!);
    if (auth === null || !auth.ok) {
      c.header('WWW-Authenticate', 'Bearer');
      if (auth?.ok === false && auth.reason === 'revoked') throw new QuicksandError('AGENT_TOKEN_REVOKED', 'this agent\'s token was revoked: enrol the host again');
      throw new QuicksandError('AGENT_TOKEN_INVALID', 'missing or unknown agent token: these routes take the token the agent got at enrolment');
    }
    return auth.agentId;
  };
  // Two manifests of one host; a large image's is a few MB of JSON.
  const observationLimit = bodyLimit({
    maxSize: 256 * 1024 * 1024,
    onError: (c) => c.json({ error: { code: 'MANIFEST_INVALID', message: 'body: an observation upload is at most 256 MiB' } }, 413),
  });
  app.post('/api/v1/agent/baselines/:version/observation', observationLimit, async (c) => {
    const agentId = agentOf(c);
    const version = numericId(c.req.param('version'), 'path.version', 'a baseline version');
    const body = parseWith(observationUploadSchema, await jsonBody(c, 'MANIFEST_UNREADABLE'), 'body');
    const summary = store.baselines.receiveObservation({
      hostId: agentId,
      version,
      baseline: body.baseline,
      observation: parseManifest(body.observation, 'body.observation'),
      expected: parseManifest(body.expected, 'body.expected'),
      now: clock(),
    });
    // The version is ready: the agent fetches it and scans against it from now on.
    deps.stream?.sendCommand(agentId, { command: 'fetch-baseline', baseline: version });
    const { accepted: _accepted, ...rest } = summary;
    return c.json(rest, 201);
  });
  app.get('/api/v1/agent/baseline', (c) => {
    const agentId = agentOf(c);
    const current = store.baselines.fetch(agentId);
    if (current === null) throw new QuicksandError('NOT_FOUND', `host ${agentId} has no baseline version ready`);
    return c.json(current);
  });
}
