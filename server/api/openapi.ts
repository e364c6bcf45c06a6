// The API's operations in one registry: the route files parse their queries and bodies with the
// schemas named here, and GET /api/v1/openapi.json is built from the same entries (zod 4's
// JSON Schema output, which OpenAPI 3.1 takes as it is). A route that is not here, or an entry
// without its route, fails test/openapi.test.ts.
import { z } from 'zod';
import { alertsQuerySchema, approveBodySchema, auditQuerySchema, containersQuerySchema, imageManifestQuerySchema, exportQuerySchema, enrollSecretBodySchema, findingsQuerySchema, hostsQuerySchema, labelsBodySchema, reasonBodySchema } from '../../shared/api.js';
import { alertSinkSchema } from '../../shared/alerts.js';
import { observationUploadSchema } from '../../shared/baseline.js';
import { manifestSchema } from '../../shared/manifest.js';
import { enrollRequestSchema } from '../../shared/protocol.js';
import { ruleSetSchema } from '../../shared/rules.js';

/** Who may call it: nobody needs a token, an agent's token, or an API token (of `roles`, when only some may). */
type Auth = 'none' | 'agent' | 'api';

export interface Operation {
  method: 'get' | 'post' | 'put' | 'delete';
  /** As Hono writes it: `/api/v1/hosts/:id`. */
  path: string;
  summary: string;
  auth: Auth;
  roles?: readonly string[];
  query?: z.ZodType;
  /** A JSON body, parsed with this schema. */
  body?: z.ZodType;
  /** A body read as bytes (an upload, maybe gzipped), validated with this schema off the serving thread. */
  upload?: z.ZodType;
}

const TRIAGE = ['admin', 'analyst'] as const;
const ADMIN = ['admin'] as const;
const EXPORT = ['admin', 'analyst', 'auditor'] as const;

export const OPERATIONS = {
  openapi: { method: 'get', path: '/api/v1/openapi.json', summary: 'This document: the API as OpenAPI 3.1', auth: 'none' },
  enroll: { method: 'post', path: '/api/v1/enroll', summary: 'Enrol an agent with an enrolment secret: its agent id and token', auth: 'none', body: enrollRequestSchema },
  uploadObservation: { method: 'post', path: '/api/v1/agent/baselines/:version/observation', summary: "The agent uploads what its host holds for a re-baseline version", auth: 'agent', upload: observationUploadSchema },
  fetchBaseline: { method: 'get', path: '/api/v1/agent/baseline', summary: "The agent fetches the baseline version it scans against", auth: 'agent' },
  fetchImageManifest: { method: 'get', path: '/api/v1/agent/image-manifest', summary: "The agent fetches the manifest uploaded for a container image its containers run", auth: 'agent', query: imageManifestQuerySchema },
  listHosts: { method: 'get', path: '/api/v1/hosts', summary: 'The fleet: hosts with status, image and drift', auth: 'api', query: hostsQuerySchema },
  getHost: { method: 'get', path: '/api/v1/hosts/:id', summary: 'One host with its counts and connection', auth: 'api' },
  listFindings: { method: 'get', path: '/api/v1/hosts/:id/findings', summary: "A host's findings with triage state and config diffs", auth: 'api', query: findingsQuerySchema },
  listReports: { method: 'get', path: '/api/v1/hosts/:id/reports', summary: "A host's stored reports (seq and hash chain)", auth: 'api' },
  listChangeSets: { method: 'get', path: '/api/v1/hosts/:id/change-sets', summary: "The package manager runs that explain a host's drift", auth: 'api' },
  getChangeSet: { method: 'get', path: '/api/v1/hosts/:id/change-sets/:cs', summary: 'One change set with its packages and paths', auth: 'api' },
  scanNow: { method: 'post', path: '/api/v1/hosts/:id/scan-now', summary: "Ask a connected host's agent for a full scan now", auth: 'api', roles: TRIAGE },
  putLabels: { method: 'put', path: '/api/v1/hosts/:id/labels', summary: 'Replace the labels the API set on a host', auth: 'api', roles: TRIAGE, body: labelsBodySchema },
  revokeAgent: { method: 'delete', path: '/api/v1/agents/:id', summary: "Revoke a host's agent token and disconnect it", auth: 'api', roles: ADMIN },
  listContainers: { method: 'get', path: '/api/v1/containers', summary: "The fleet's containers", auth: 'api', query: containersQuerySchema },
  hostContainers: { method: 'get', path: '/api/v1/hosts/:id/containers', summary: "A container host's containers", auth: 'api' },
  listImages: { method: 'get', path: '/api/v1/images', summary: 'Image versions with their hosts', auth: 'api' },
  uploadImage: { method: 'post', path: '/api/v1/images', summary: "Upload an image's manifest (JSON, may be gzipped)", auth: 'api', roles: TRIAGE, upload: manifestSchema },
  createSink: { method: 'post', path: '/api/v1/sinks', summary: 'Create or replace an alert sink', auth: 'api', roles: ADMIN, body: alertSinkSchema },
  listSinks: { method: 'get', path: '/api/v1/sinks', summary: 'Alert sinks, credentials redacted', auth: 'api', roles: ADMIN },
  deleteSink: { method: 'delete', path: '/api/v1/sinks/:id', summary: 'Delete an alert sink', auth: 'api', roles: ADMIN },
  listAlerts: { method: 'get', path: '/api/v1/alerts', summary: 'Alert deliveries and held alerts, a page at a time', auth: 'api', query: alertsQuerySchema },
  approveFinding: { method: 'post', path: '/api/v1/hosts/:id/findings/:fid/approve', summary: 'Approve one finding', auth: 'api', roles: TRIAGE, body: approveBodySchema },
  approveChangeSet: { method: 'post', path: '/api/v1/hosts/:id/change-sets/:cs/approve', summary: 'Approve every finding of a change set', auth: 'api', roles: TRIAGE, body: approveBodySchema },
  reopenFinding: { method: 'post', path: '/api/v1/hosts/:id/findings/:fid/reopen', summary: "Re-open an approved finding", auth: 'api', roles: TRIAGE, body: reasonBodySchema },
  listAudit: { method: 'get', path: '/api/v1/audit', summary: 'The audit log, newest page first', auth: 'api', query: auditQuerySchema },
  rebaseline: { method: 'post', path: '/api/v1/hosts/:id/rebaseline', summary: "Accept a host's drift and open its next baseline version", auth: 'api', roles: TRIAGE, body: reasonBodySchema },
  listBaselines: { method: 'get', path: '/api/v1/hosts/:id/baselines', summary: "A host's baseline versions", auth: 'api' },
  getBaseline: { method: 'get', path: '/api/v1/hosts/:id/baselines/:version', summary: 'One baseline version with its manifest', auth: 'api' },
  getRules: { method: 'get', path: '/api/v1/rules', summary: 'The rule set in force', auth: 'api' },
  saveRules: { method: 'post', path: '/api/v1/rules', summary: 'Replace the rule set', auth: 'api', roles: TRIAGE, body: ruleSetSchema },
  createEnrollSecret: { method: 'post', path: '/api/v1/enroll-secrets', summary: 'Create an enrolment secret (optional expiry and uses)', auth: 'api', roles: ADMIN, body: enrollSecretBodySchema },
  listEnrollSecrets: { method: 'get', path: '/api/v1/enroll-secrets', summary: 'Enrolment secrets (never their text)', auth: 'api', roles: ADMIN },
  revokeEnrollSecret: { method: 'delete', path: '/api/v1/enroll-secrets/:id', summary: 'Revoke an enrolment secret', auth: 'api', roles: ADMIN },
  listTokens: { method: 'get', path: '/api/v1/tokens', summary: 'API tokens (never their text)', auth: 'api', roles: ADMIN },
  revokeToken: { method: 'delete', path: '/api/v1/tokens/:id', summary: 'Revoke an API token', auth: 'api', roles: ADMIN },
  getExport: { method: 'get', path: '/api/v1/exports', summary: 'A compliance export of a period and scope (csv, json, html, pdf, ocsf), or its DSSE signature with signature=1', auth: 'api', roles: EXPORT, query: exportQuerySchema },
  getSigningKey: { method: 'get', path: '/api/v1/signing-key', summary: "The ed25519 public key (PEM) that signs exports and attestations", auth: 'api', roles: EXPORT },
  getAttestation: { method: 'get', path: '/api/v1/hosts/:id/attestation', summary: 'A signed statement that a cattle, fresh host matched its image (409 with the reason otherwise)', auth: 'api', roles: EXPORT },
} as const satisfies Record<string, Operation>;

const errorSchema = z.strictObject({ error: z.strictObject({ code: z.string(), message: z.string() }) });

/** A request schema as JSON Schema (what a client sends: defaults make a field optional). */
function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', cycles: 'ref' }) as Record<string, unknown>;
  return rest;
}

/** The OpenAPI 3.1 document of every operation above. */
export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [id, op] of Object.entries(OPERATIONS) as Array<[string, Operation]>) {
    const path = op.path.replace(/:([A-Za-z]+)/g, '{$1}');
    const parameters: unknown[] = [...op.path.matchAll(/:([A-Za-z]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    if (op.query !== undefined) {
      const q = jsonSchema(op.query) as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, schema] of Object.entries(q.properties ?? {})) parameters.push({ name, in: 'query', required: q.required?.includes(name) ?? false, schema });
    }
    const content = (schema: z.ZodType, types: string[]): Record<string, unknown> => Object.fromEntries(types.map((t) => [t, { schema: t === 'application/json' ? jsonSchema(schema) : { type: 'string', format: 'binary' } }]));
    const requestBody =
      op.body !== undefined ? { required: true, content: content(op.body, ['application/json']) } : op.upload !== undefined ? { required: true, content: content(op.upload, ['application/json', 'application/gzip']) } : undefined;
    const error = { description: 'error', content: { 'application/json': { schema: jsonSchema(errorSchema) } } };
    (paths[path] ??= {})[op.method] = {
      operationId: id,
      summary: op.summary,
      ...(op.roles === undefined ? {} : { description: `Needs the role ${op.roles.join(' or ')}.` }),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(requestBody === undefined ? {} : { requestBody }),
      security: op.auth === 'none' ? [] : [{ [op.auth === 'agent' ? 'agentToken' : 'apiToken']: [] }],
      responses: { '200': { description: 'OK (201 for what it creates)' }, '4XX': error, '5XX': error },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Quicksand API', version: '1', description: 'The JSON API of the Quicksand server. Errors answer `{ error: { code, message } }`.' },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths,
    components: {
      securitySchemes: {
        apiToken: { type: 'http', scheme: 'bearer', description: 'An API token (`quicksand-server token create`)' },
        agentToken: { type: 'http', scheme: 'bearer', description: "The agent's token from enrolment" },
      },
    },
  };
}
