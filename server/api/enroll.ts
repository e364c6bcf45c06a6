// Enrolment: an enrolment secret buys a host its own agent token.
import type { Hono } from 'hono';
import { QuicksandError } from '../../shared/errors.js';
import { enrollRequestSchema } from '../../shared/protocol.js';
import { jsonBody, parseWith } from './context.js';
import type { AppDeps, Env } from './context.js';

/** POST /api/v1/enroll. */
export function enrollRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  app.post('/api/v1/enroll', async (c) => {
    const req = parseWith(enrollRequestSchema, await jsonBody(c), 'body');
    const enrolled = store.enrollAgent(req.secret, req.hostname, clock());
    if (enrolled === null) throw new QuicksandError('ENROLL_REFUSED', 'secret: unknown or revoked enrolment secret');
    return c.json(enrolled, 201);
  });
}
