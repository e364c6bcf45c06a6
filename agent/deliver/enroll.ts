import { QuicksandError } from '../../shared/errors.js';
import { enrollResponseSchema } from '../../shared/protocol.js';
import type { AgentConfig } from '../../shared/protocol.js';
import { formatIssues } from '../../shared/schema-errors.js';
import { withAnyServer } from './servers.js';

/**
 * Exchanges an enrolment secret for this host's agent id and token (tied to its machine-id, when
 * given). With several URLs (nodes of one deployment) they are tried in random order until one
 * answers, and the identity keeps them all.
 */
export async function enrollAgent(servers: string | readonly string[], secret: string, hostname: string, machineId?: string, fetchFn: typeof fetch = fetch): Promise<AgentConfig> {
  const urls = (typeof servers === 'string' ? [servers] : servers).map((s) => s.replace(/\/+$/, ''));
  const config = await withAnyServer(urls, (base) => enrollWith(base, secret, hostname, machineId, fetchFn));
  return urls.length > 1 ? { ...config, servers: urls } : config;
}

async function enrollWith(base: string, secret: string, hostname: string, machineId: string | undefined, fetchFn: typeof fetch): Promise<AgentConfig> {
  let res: Response;
  try {
    res = await fetchFn(`${base}/api/v1/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ secret, hostname, ...(machineId === undefined ? {} : { machineId }) }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new QuicksandError('SERVER_UNREACHABLE', `cannot reach ${base}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`);
  }
  const text = await res.text();
  if (res.status === 403) throw new QuicksandError('ENROLL_REFUSED', `${base} refused the enrolment secret: ask for a new one (quicksand-server enroll-secret)`);
  if (!res.ok) throw new QuicksandError('ENROLL_REFUSED', `${base} answered ${res.status}: ${text.slice(0, 200)}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new QuicksandError('ENROLL_REFUSED', `${base} answered with something that is not JSON: is it a quicksand-server?`);
  }
  const parsed = enrollResponseSchema.safeParse(value);
  if (!parsed.success) throw new QuicksandError('ENROLL_REFUSED', `${base} answered an unexpected enrolment response:\n${formatIssues(parsed.error)}`);
  return { server: base, agentId: parsed.data.agentId, token: parsed.data.token };
}
