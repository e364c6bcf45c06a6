// The OpenAPI document against the app itself: every /api/v1 route Hono holds is in it and every
// operation in it is a route; every request body it documents is the schema its route parses
// with (a body the document refuses, the route refuses; one the document allows gets past the
// schema); the document is served without a token and is valid OpenAPI 3.1 JSON Schema.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApp } from '../server/api/app.js';
import { OPERATIONS, openApiDocument } from '../server/api/openapi.js';
import type { Operation } from '../server/api/openapi.js';
import { createMetrics } from '../server/metrics.js';
import { STORE_BACKENDS } from './helpers/store-backends.js';
import type { FreshStore } from './helpers/store-backends.js';

type Doc = { openapi: string; paths: Record<string, Record<string, { operationId: string; requestBody?: { content: Record<string, { schema: Record<string, unknown> }> } }>> };

describe.each(STORE_BACKENDS)('the OpenAPI document on the $name store', (backend) => {
  let db: FreshStore;
  let app: ReturnType<typeof createApp>;
  let admin: string;
  let agent: string;
  let doc: Doc;
  beforeAll(async () => {
    db = await backend.fresh();
    app = createApp({ store: db.store, clock: () => new Date(), metrics: createMetrics() });
    admin = await db.store.createApiToken('admin', new Date());
    agent = (await db.store.enrollAgent(await db.store.createEnrollSecret(new Date()), 'h', new Date()))!.token;
    const res = await app.request('/api/v1/openapi.json');
    expect(res.status).toBe(200);
    doc = (await res.json()) as Doc;
  });
  afterAll(async () => {
    await db.drop();
  });

  it('is served without a token as OpenAPI 3.1', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc).toEqual(JSON.parse(JSON.stringify(openApiDocument())));
  });

  it('holds every /api/v1 route of the app, and no operation the app does not serve', () => {
    const served = app.routes
      .filter((r) => r.method !== 'ALL' && r.path.startsWith('/api/v1/'))
      .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:([A-Za-z]+)/g, '{$1}')}`);
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`));
    expect(new Set(served).size).toBe(served.length);
    expect([...served].sort()).toEqual([...documented].sort());
  });

  const withBodies = (Object.entries(OPERATIONS) as Array<[string, Operation]>).filter(([, op]) => op.body !== undefined);

  it.each(withBodies.map(([id, op]) => [id, op] as const))('%s: the route refuses a body the documented schema refuses', async (id, op) => {
    const url = op.path.replace(/:([A-Za-z]+)/g, (_m, name: string) => (name === 'fid' || name === 'version' ? '1' : 'no-such-thing'));
    const documented = doc.paths[op.path.replace(/:([A-Za-z]+)/g, '{$1}')]![op.method]!.requestBody!.content['application/json']!.schema;
    // The document is the schema the route parses, as JSON Schema.
    expect(documented, id).toEqual(JSON.parse(JSON.stringify(z.toJSONSchema(op.body!, { io: 'input', unrepresentable: 'any', cycles: 'ref' }), (k, v) => (k === '$schema' ? undefined : v))));
    // Every documented body is a closed object (or a union of them): an unknown field is refused by both.
    const body = { __unexpected__: true };
    expect(op.body!.safeParse(body).success).toBe(false);
    const token = op.auth === 'agent' ? agent : admin;
    const res = await app.request(url, { method: op.method.toUpperCase(), headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(res.status, `${id}: ${await res.clone().text()}`).toBe(400);
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    expect(error.message).toMatch(/^body/);
  });
});
