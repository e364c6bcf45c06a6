// The HTTP API as a Hono app built from plain parameters: testable with app.request(), no socket.
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Context } from 'hono';
import type { z } from 'zod';
import { alertsQuerySchema, approveBodySchema, auditQuerySchema, findingsQuerySchema, hostsQuerySchema, labelsBodySchema, reasonBodySchema } from '../shared/api.js';
import { parseRuleSet } from '../shared/rules.js';
import { parseAlertSink } from '../shared/alerts.js';
import type { AlertSink } from '../shared/alerts.js';
import type { ApiRoleName } from '../shared/api.js';
import { QuicksandError, isQuicksandError } from '../shared/errors.js';
import type { ErrorCode } from '../shared/errors.js';
import { parseManifest } from '../shared/manifest.js';
import { enrollRequestSchema } from '../shared/protocol.js';
import type { CommandFrame } from '../shared/protocol.js';
import { observationUploadSchema } from '../shared/baseline.js';
import { formatIssues } from '../shared/schema-errors.js';
import type { Metrics } from './metrics.js';
import type { Store } from './store/types.js';

export interface AppDeps {
  store: Store;
  clock: () => Date;
  metrics: Metrics;
  /** The live side of the stream; absent when the app runs without one (tests). */
  stream?: { isConnected(agentId: string): boolean; sendCommand(agentId: string, command: 'scan-now' | Omit<CommandFrame, 'type'>): boolean; disconnect(agentId: string, reason: string): void };
}

// The one place error codes become HTTP statuses.
const STATUS: Partial<Record<ErrorCode, 400 | 401 | 403 | 404 | 409 | 413 | 503>> = {
  QUERY_INVALID: 400,
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
};

type Env = { Variables: { role: ApiRoleName; tokenId: string; tokenName: string | null } };

const TRIAGE_ROLES: readonly ApiRoleName[] = ['admin', 'analyst'];

function actorOf(c: Context<Env>): { id: string; role: string; name: string | null } {
  return { id: c.get('tokenId'), role: c.get('role'), name: c.get('tokenName') };
}

function numericId(text: string, what: string, of = 'a finding id'): number {
  if (!/^[1-9]\d{0,15}$/.test(text)) throw new QuicksandError('QUERY_INVALID', `${what}: expected ${of} (a positive integer), got "${text}"`);
  return Number(text);
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new QuicksandError('QUERY_INVALID', `${what}: ${formatIssues(result.error).replaceAll('\n', '; ')}`);
  return result.data;
}

/** The request's JSON body; a body that is not JSON gets `code` and `message`. */
async function jsonBody(c: Context<Env>, code: 'QUERY_INVALID' | 'MANIFEST_UNREADABLE' = 'QUERY_INVALID', message = 'body: expected JSON'): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw new QuicksandError(code, message);
  }
}

/** A sink as the API shows it: the credential (secret, routing key, Slack URL) never leaves. */
function redactSink(sink: AlertSink): Record<string, unknown> {
  switch (sink.type) {
    case 'webhook':
      return { ...sink, secret: '(set)' };
    case 'pagerduty':
      return { ...sink, routingKey: `…${sink.routingKey.slice(-4)}` };
    case 'slack':
      return { ...sink, url: `${new URL(sink.url).origin}/…` };
  }
}

function requireRole(c: Context<Env>, roles: readonly ApiRoleName[]): void {
  if (!roles.includes(c.get('role'))) throw new QuicksandError('FORBIDDEN', `this needs the role ${roles.join(' or ')}; the token has ${c.get('role')}`);
}

export function createApp(deps: AppDeps): Hono<Env> {
  const { store, clock, metrics } = deps;
  const app = new Hono<Env>();

  app.onError((err, c) => {
    if (isQuicksandError(err)) {
      const status = STATUS[err.code] ?? 500;
      return c.json({ error: { code: err.code, message: err.message } }, status);
    }
    return c.json({ error: { code: 'INTERNAL', message: 'internal error' } }, 500);
  });
  app.notFound((c) => c.json({ error: { code: 'NOT_FOUND', message: `no route ${c.req.method} ${c.req.path}` } }, 404));

  app.get('/healthz', (c) => c.json({ ok: true }));
  app.get('/metrics', (c) => {
    const now = clock();
    return c.text(metrics.render(now.getTime(), store.countHosts(now)), 200, { 'Content-Type': 'text/plain; version=0.0.4' });
  });

  app.post('/api/v1/enroll', async (c) => {
    const req = parseWith(enrollRequestSchema, await jsonBody(c), 'body');
    const enrolled = store.enrollAgent(req.secret, req.hostname, clock(), req.machineId);
    if (enrolled === null) throw new QuicksandError('ENROLL_REFUSED', 'secret: unknown or revoked enrolment secret');
    return c.json(enrolled, 201);
  });

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

  // Every other /api/v1 route needs an API token.
  app.use('/api/v1/*', async (c, next) => {
    const m = /^Bearer (\S+)$/.exec(c.req.header('authorization') ?? '');
    const auth = m === null ? null : store.authenticateApiToken(m[1]!);
    if (auth === null) {
      c.header('WWW-Authenticate', 'Bearer');
      throw new QuicksandError('API_TOKEN_INVALID', 'missing, unknown or revoked API token: create one with `quicksand-server token create --role auditor`');
    }
    c.set('role', auth.role);
    c.set('tokenId', auth.tokenId);
    c.set('tokenName', auth.name);
    await next();
  });

  app.get('/api/v1/hosts', (c) => {
    const query = parseWith(hostsQuerySchema, c.req.query(), 'query');
    return c.json({ hosts: store.listHosts(query, clock()) });
  });
  app.get('/api/v1/hosts/:id', (c) => {
    const host = store.getHost(c.req.param('id'), clock());
    if (host === null) throw new QuicksandError('NOT_FOUND', `host ${c.req.param('id')} is not known`);
    return c.json({ ...host, connected: deps.stream?.isConnected(host.id) ?? false });
  });
  app.get('/api/v1/hosts/:id/findings', (c) => {
    const query = parseWith(findingsQuerySchema, c.req.query(), 'query');
    const findings = store.listFindings(c.req.param('id'), query, clock());
    if (findings === null) throw new QuicksandError('NOT_FOUND', `host ${c.req.param('id')} is not known`);
    return c.json({ findings });
  });
  app.get('/api/v1/hosts/:id/reports', (c) => {
    const id = c.req.param('id');
    if (store.getHost(id, clock()) === null) throw new QuicksandError('NOT_FOUND', `host ${id} is not known`);
    return c.json({ reports: store.listReports(id) });
  });
  app.post('/api/v1/hosts/:id/scan-now', (c) => {
    requireRole(c, ['admin', 'analyst']);
    const id = c.req.param('id');
    if (store.getHost(id, clock()) === null) throw new QuicksandError('NOT_FOUND', `host ${id} is not known`);
    if (deps.stream?.sendCommand(id, 'scan-now') !== true) return c.json({ error: { code: 'NOT_CONNECTED', message: `agent ${id} is not connected now` } }, 409);
    return c.json({ sent: true }, 202);
  });
  app.get('/api/v1/images', (c) => c.json({ images: store.listImages() }));
  // A manifest of a large image is a few MB of JSON; anything far beyond is not a manifest.
  const manifestLimit = bodyLimit({
    maxSize: 64 * 1024 * 1024,
    onError: (c) => c.json({ error: { code: 'MANIFEST_INVALID', message: 'body: a manifest is at most 64 MiB' } }, 413),
  });
  app.post('/api/v1/images', manifestLimit, async (c) => {
    requireRole(c, ['admin', 'analyst']);
    const manifest = parseManifest(await jsonBody(c, 'MANIFEST_UNREADABLE', 'body: expected the manifest as JSON (gunzip a .json.gz first)'), 'body');
    const replaced = store.saveManifest(manifest, clock());
    return c.json({ name: manifest.image.name, version: manifest.image.version, packages: manifest.packages.length, files: manifest.files.length }, replaced ? 200 : 201);
  });
  // Alert sinks: admin only (they hold credentials of other systems).
  app.post('/api/v1/sinks', async (c) => {
    requireRole(c, ['admin']);
    const sink = parseAlertSink(await jsonBody(c), 'body');
    const replaced = store.saveSink(sink, clock());
    store.triage.audit({ actor: actorOf(c), action: replaced ? 'sink-update' : 'sink-create', target: `sink:${sink.id}`, detail: { type: sink.type, minSeverity: sink.minSeverity }, now: clock() });
    return c.json({ sink: redactSink(sink) }, replaced ? 200 : 201);
  });
  app.get('/api/v1/sinks', (c) => {
    requireRole(c, ['admin']);
    return c.json({ sinks: store.listSinks().map(redactSink) });
  });
  app.delete('/api/v1/sinks/:id', (c) => {
    requireRole(c, ['admin']);
    const id = c.req.param('id');
    if (!store.deleteSink(id)) throw new QuicksandError('NOT_FOUND', `sink ${id} is not configured`);
    store.triage.audit({ actor: actorOf(c), action: 'sink-delete', target: `sink:${id}`, now: clock() });
    return c.json({ deleted: id });
  });
  // Every alert queued and every attempt to deliver it: the evidence that alerts were handled.
  app.get('/api/v1/alerts', (c) => {
    const query = parseWith(alertsQuerySchema, c.req.query(), 'query');
    const deliveries = store.alertQueue.listDeliveries(query.host);
    return c.json({ deliveries: deliveries.map((d) => ({ ...d, attemptLog: store.alertQueue.listAttempts(d.id) })) });
  });

  // Triage: analysts and admins act, auditors read. Every act is in the audit log.
  app.post('/api/v1/hosts/:id/findings/:fid/approve', async (c) => {
    requireRole(c, TRIAGE_ROLES);
    const body = parseWith(approveBodySchema, await jsonBody(c), 'body');
    const res = store.triage.approve({ hostId: c.req.param('id'), findingIds: [numericId(c.req.param('fid'), 'path.findingId')], ...body, actor: actorOf(c), now: clock() });
    return c.json(res, 201);
  });
  app.post('/api/v1/hosts/:id/change-sets/:cs/approve', async (c) => {
    requireRole(c, TRIAGE_ROLES);
    const body = parseWith(approveBodySchema, await jsonBody(c), 'body');
    const res = store.triage.approve({ hostId: c.req.param('id'), changeSet: c.req.param('cs'), ...body, actor: actorOf(c), now: clock() });
    return c.json(res, 201);
  });
  app.post('/api/v1/hosts/:id/findings/:fid/reopen', async (c) => {
    requireRole(c, TRIAGE_ROLES);
    const body = parseWith(reasonBodySchema, await jsonBody(c), 'body');
    return c.json(store.triage.reopen({ hostId: c.req.param('id'), findingId: numericId(c.req.param('fid'), 'path.findingId'), reason: body.reason, actor: actorOf(c), now: clock() }));
  });
  app.post('/api/v1/hosts/:id/rebaseline', async (c) => {
    requireRole(c, TRIAGE_ROLES);
    const body = parseWith(reasonBodySchema, await jsonBody(c), 'body');
    const id = c.req.param('id');
    const res = store.triage.rebaseline({ hostId: id, ...body, actor: actorOf(c), now: clock() });
    // The agent uploads what its host holds now; an agent not connected is asked when it says hello.
    const agentAsked = deps.stream?.sendCommand(id, { command: 'upload-observation', baseline: res.version }) === true;
    return c.json({ ...res, agentAsked }, 201);
  });
  // Labels the rules match on (`hostLabels`); they replace what the API set before.
  app.put('/api/v1/hosts/:id/labels', async (c) => {
    requireRole(c, TRIAGE_ROLES);
    const body = parseWith(labelsBodySchema, await jsonBody(c), 'body');
    return c.json(store.triage.setLabels({ hostId: c.req.param('id'), labels: body.labels, ...(body.reason === undefined ? {} : { reason: body.reason }), actor: actorOf(c), now: clock() }));
  });
  app.get('/api/v1/hosts/:id/baselines', (c) => {
    const list = store.baselines.list(c.req.param('id'));
    if (list === null) throw new QuicksandError('NOT_FOUND', `host ${c.req.param('id')} is not known`);
    return c.json({ baselines: list });
  });
  // One version with its manifest (null until the agent's observation arrived).
  app.get('/api/v1/hosts/:id/baselines/:version', (c) => {
    const version = numericId(c.req.param('version'), 'path.version', 'a baseline version');
    const b = store.baselines.get(c.req.param('id'), version);
    if (b === null) throw new QuicksandError('NOT_FOUND', `host ${c.req.param('id')} has no baseline version ${version}`);
    return c.json(b);
  });
  app.get('/api/v1/rules', (c) => c.json({ rules: store.triage.currentRules() }));
  app.post('/api/v1/rules', async (c) => {
    requireRole(c, TRIAGE_ROLES);
    const set = parseRuleSet(await jsonBody(c), 'body');
    return c.json(store.triage.saveRules({ set, actor: actorOf(c), now: clock() }), 201);
  });
  app.get('/api/v1/audit', (c) => {
    const query = parseWith(auditQuerySchema, c.req.query(), 'query');
    return c.json(store.triage.listAudit(query));
  });

  app.delete('/api/v1/agents/:id', (c) => {
    requireRole(c, ['admin']);
    const id = c.req.param('id');
    if (!store.revokeAgent(id, clock())) throw new QuicksandError('NOT_FOUND', `agent ${id} is not known or already revoked`);
    store.triage.audit({ actor: actorOf(c), action: 'agent-revoke', target: `host:${id}`, now: clock() });
    deps.stream?.disconnect(id, 'token revoked');
    return c.json({ revoked: id });
  });

  return app;
}
