// What every route file shares: the app's dependencies, the request's role, and the helpers that
// turn a request into checked values (every input parsed by a schema; errors name where).
import type { Context } from 'hono';
import type { z } from 'zod';
import type { ApiRoleName } from '../../shared/api.js';
import { QuicksandError } from '../../shared/errors.js';
import type { CommandFrame } from '../../shared/protocol.js';
import { formatIssues } from '../../shared/schema-errors.js';
import type { Metrics } from '../metrics.js';
import type { Store } from '../store/types.js';

export interface AppDeps {
  store: Store;
  clock: () => Date;
  metrics: Metrics;
  /** The live side of the stream; absent when the app runs without one (tests). */
  stream?: { isConnected(agentId: string): boolean; sendCommand(agentId: string, command: 'scan-now' | Omit<CommandFrame, 'type'>): boolean; disconnect(agentId: string, reason: string): void };
}

export type Env = { Variables: { role: ApiRoleName; tokenId: string } };

export const TRIAGE_ROLES: readonly ApiRoleName[] = ['admin', 'analyst'];

export function actorOf(c: Context<Env>): { id: string; role: string } {
  return { id: c.get('tokenId'), role: c.get('role') };
}

export function numericId(text: string, what: string, of = 'a finding id'): number {
  if (!/^[1-9]\d{0,15}$/.test(text)) throw new QuicksandError('QUERY_INVALID', `${what}: expected ${of} (a positive integer), got "${text}"`);
  return Number(text);
}

export function parseWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new QuicksandError('QUERY_INVALID', `${what}: ${formatIssues(result.error).replaceAll('\n', '; ')}`);
  return result.data;
}

/** The request's JSON body; a body that is not JSON gets `code` and `message`. */
export async function jsonBody(c: Context<Env>, code: 'QUERY_INVALID' | 'MANIFEST_UNREADABLE' = 'QUERY_INVALID', message = 'body: expected JSON'): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw new QuicksandError(code, message);
  }
}

export function requireRole(c: Context<Env>, roles: readonly ApiRoleName[]): void {
  if (!roles.includes(c.get('role'))) throw new QuicksandError('FORBIDDEN', `this needs the role ${roles.join(' or ')}; the token has ${c.get('role')}`);
}
