// The agent's own routes, on its agent token: the re-baseline exchange (upload what the host
// holds, fetch the version to scan against).
import type { Hono } from 'hono';
import type { Context } from 'hono';
import { QuicksandError } from '../../shared/errors.js';
import { normalizeImageRef } from '../../shared/image-ref.js';
import { bodyBytes, numericId, parseWith } from './context.js';
import { OPERATIONS } from './openapi.js';
import type { AppDeps, Env } from './context.js';

/** POST /api/v1/agent/baselines/:version/observation, GET /api/v1/agent/baseline, GET /api/v1/agent/image-manifest. */
export function agentRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  // The agent's own routes: its agent token, never an API token. It speaks for its host only.
  const agentOf = async (c: Context<Env>): Promise<string> => {
    const m = /^Bearer (\S+)$/.exec(c.req.header('authorization') ?? '');
    const auth = m === null ? null : await store.authenticateAgent(m[1]!);
    if (auth === null || !auth.ok) {
      c.header('WWW-Authenticate', 'Bearer');
      if (auth?.ok === false && auth.reason === 'revoked') throw new QuicksandError('AGENT_TOKEN_REVOKED', 'this agent\'s token was revoked: enrol the host again');
      throw new QuicksandError('AGENT_TOKEN_INVALID', 'missing or unknown agent token: these routes take the token the agent got at enrolment');
    }
    return auth.agentId;
  };
  app.post('/api/v1/agent/baselines/:version/observation', async (c) => {
    const agentId = await agentOf(c);
    const version = numericId(c.req.param('version'), 'path.version', 'a baseline version');
    // Two manifests: parsed and derived off this thread.
    const summary = await (deps.uploads ?? store.uploads).observation({ hostId: agentId, version, body: await bodyBytes(c), now: clock() });
    // The version is ready: the agent fetches it and scans against it from now on.
    await deps.stream?.sendCommand(agentId, { command: 'fetch-baseline', baseline: version });
    return c.json(summary, 201);
  });
  app.get('/api/v1/agent/baseline', async (c) => {
    const agentId = await agentOf(c);
    const current = await store.baselines.fetch(agentId);
    if (current === null) throw new QuicksandError('NOT_FOUND', `host ${agentId} has no baseline version ready`);
    return c.json(current);
  });
  app.get('/api/v1/agent/image-manifest', async (c) => {
    await agentOf(c);
    const { name, version } = parseWith(OPERATIONS.fetchImageManifest.query, c.req.query(), 'query');
    // Uploaded under the reference as the runtime spells it, or normalized: either answers.
    const text = (await store.uploadedManifest(normalizeImageRef(name), version)) ?? (await store.uploadedManifest(name, version));
    if (text === null) throw new QuicksandError('NOT_FOUND', `no manifest was uploaded for image ${name} ${version}`);
    return c.body(text, 200, { 'content-type': 'application/json' });
  });
}
