// Enrolment: an enrolment secret buys a host its own agent token.
import type { Hono } from 'hono';
import { QuicksandError } from '../../shared/errors.js';
import { enrollRequestSchema } from '../../shared/protocol.js';
import { jsonBody, parseWith } from './context.js';
import type { AppDeps, Env } from './context.js';
import { remoteAddress } from './context.js';
import { createAddressLimiter } from '../stream/address-limits.js';

/** POST /api/v1/enroll. */
export function enrollRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  // Per source address: guessing secrets, or burning a secret's uses, takes forever.
  const perAddress = createAddressLimiter(deps.enrollRatePerSec ?? 0.2, deps.enrollBurst ?? 20, () => clock().getTime());
  app.post('/api/v1/enroll', async (c) => {
    const admitted = perAddress.take(remoteAddress(c));
    if (admitted !== true) {
      c.header('Retry-After', String(admitted));
      throw new QuicksandError('RATE_LIMITED', `too many enrolments from this address: retry after ${admitted} s`);
    }
    const req = parseWith(enrollRequestSchema, await jsonBody(c), 'body');
    const enrolled = store.enrollAgent(req.secret, req.hostname, clock());
    if (enrolled === null) throw new QuicksandError('ENROLL_REFUSED', 'secret: unknown, revoked, expired or used-up enrolment secret');
    return c.json(enrolled, 201);
  });
}
