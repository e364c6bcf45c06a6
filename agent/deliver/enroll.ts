import { QuicksandError } from '../../shared/errors.js';
import { enrollResponseSchema } from '../../shared/protocol.js';
import type { AgentConfig } from '../../shared/protocol.js';
import { formatIssues } from '../../shared/schema-errors.js';

/** Exchanges an enrolment secret for this host's agent id and token. */
export async function enrollAgent(server: string, secret: string, hostname: string, fetchFn: typeof fetch = fetch): Promise<AgentConfig> {
  const base = server.replace(/\/+$/, '');
  let res: Response;
  try {
    res = await fetchFn(`${base}/api/v1/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ secret, hostname }),
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
