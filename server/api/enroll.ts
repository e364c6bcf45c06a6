// Enrolment: an enrolment secret buys a host its own agent token.
import type { Hono } from 'hono';
import { QuicksandError } from '../../shared/errors.js';
import { OPERATIONS } from './openapi.js';
import { jsonBody, parseWith } from './context.js';
import type { AppDeps, Env } from './context.js';
import { remoteAddress } from './context.js';

/** POST /api/v1/enroll. */
export function enrollRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  app.post('/api/v1/enroll', async (c) => {
    // Per source address: guessing secrets, or burning a secret's uses, takes forever.
    const admitted = deps.enrollLimiter?.take(remoteAddress(c)) ?? true;
    if (admitted !== true) {
      c.header('Retry-After', String(admitted));
      throw new QuicksandError('RATE_LIMITED', `too many enrolments from this address: retry after ${admitted} s`);
    }
    const req = parseWith(OPERATIONS.enroll.body, await jsonBody(c), 'body');
    const enrolled = await store.enrollAgent(req.secret, req.hostname, clock(), req.machineId);
    if (enrolled === null) throw new QuicksandError('ENROLL_REFUSED', 'secret: unknown, revoked, expired or used-up enrolment secret');
    return c.json(enrolled, 201);
  });
}
