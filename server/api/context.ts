// What every route file shares: the app's dependencies, the request's role, and the helpers that
// turn a request into checked values (every input parsed by a schema; errors name where).
import type { Context } from 'hono';
import type { z } from 'zod';
import type { ApiRoleName } from '../../shared/api.js';
import { QuicksandError } from '../../shared/errors.js';
import type { CommandFrame } from '../../shared/protocol.js';
import { formatIssues } from '../../shared/schema-errors.js';
import type { Metrics } from '../metrics.js';
import type { Store, Uploads } from '../store/types.js';

export interface AppDeps {
  store: Store;
  clock: () => Date;
  metrics: Metrics;
  /** Enrolments admitted per source address; absent: no limit (tests through app.request()). */
  enrollLimiter?: { take(address: string): true | number };
  /** Where uploads are parsed and stored (a worker thread); absent: on this thread, through the store. */
  uploads?: Uploads;
  /** Whether reports can be stored now (the ingest worker is up, the database writable). */
  health?: () => Promise<{ ok: boolean; problems: string[] }>;
  /** Compliance exports, their signatures and host attestations (server/export, wired by server.ts). */
  exports?: ExportDeps;
  /** The agents' sockets on whichever node holds them. */
  stream?: {
    isConnected(agentId: string): Promise<boolean>;
    /** False when no node holds the agent's socket. */
    sendCommand(agentId: string, command: 'scan-now' | Omit<CommandFrame, 'type'>): Promise<boolean>;
    disconnect(agentId: string, reason: string): Promise<void>;
  };
  /** This server process's node id (in /healthz and /metrics). */
  nodeId?: string;
}

export interface ExportJobDeps {
  name: string;
  contentType: string;
  body: AsyncIterable<Uint8Array>;
  signature(): unknown;
}

export interface ExportDeps {
  publicKeyPem: string;
  keyid: string;
  run(query: Record<string, string>, actor: { id: string; role: string; name: string | null }, now: Date): Promise<{ job: ExportJobDeps; signatureOnly: boolean }>;
  signatureOf(query: Record<string, string>, job: ExportJobDeps): Promise<unknown>;
  remember(query: Record<string, string>, job: ExportJobDeps): void;
  attest(hostId: string, now: Date): Promise<unknown>;
}

export type Env = { Variables: { role: ApiRoleName; tokenId: string; tokenName: string | null } };

export const TRIAGE_ROLES: readonly ApiRoleName[] = ['admin', 'analyst'];
/** Exports and attestations: every role reads them. */
export const EXPORT_ROLES: readonly ApiRoleName[] = ['admin', 'analyst', 'auditor'];

export function actorOf(c: Context<Env>): { id: string; role: string; name: string | null } {
  return { id: c.get('tokenId'), role: c.get('role'), name: c.get('tokenName') };
}

export function numericId(text: string, what: string, of = 'a finding id'): number {
  if (!/^[1-9]\d{0,15}$/.test(text)) throw new QuicksandError('QUERY_INVALID', `${what}: expected ${of} (a positive integer), got "${text}"`);
  return Number(text);
}

/** Parses `value` (`what` names it: `query`, `body`); a body's mistakes get BODY_INVALID, the rest QUERY_INVALID. */
export function parseWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new QuicksandError(what === 'body' || what.startsWith('body.') ? 'BODY_INVALID' : 'QUERY_INVALID', `${what}: ${formatIssues(result.error).replaceAll('\n', '; ')}`);
  return result.data;
}

/** The request's JSON body; a body that is not JSON gets `code` and `message`. */
export async function jsonBody(c: Context<Env>, code: 'BODY_INVALID' | 'MANIFEST_UNREADABLE' = 'BODY_INVALID', message = 'body: expected JSON'): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw new QuicksandError(code, message);
  }
}

/** The request's body as bytes (already bounded by its route's limit). */
export async function bodyBytes(c: Context<Env>): Promise<Uint8Array> {
  return new Uint8Array(await c.req.arrayBuffer());
}

export function requireRole(c: Context<Env>, roles: readonly ApiRoleName[]): void {
  if (!roles.includes(c.get('role'))) throw new QuicksandError('FORBIDDEN', `this needs the role ${roles.join(' or ')}; the token has ${c.get('role')}`);
}

/** The request's source address ('' when the app runs without a socket, as in app.request()). */
export function remoteAddress(c: Context<Env>): string {
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming;
  return incoming?.socket?.remoteAddress ?? '';
}
