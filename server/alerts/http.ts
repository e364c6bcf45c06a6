import { hasUserInfo, scrubUrls } from '../../shared/alerts.js';
/** What a sink sends: one POST with a JSON body. Built by the pure payload builders. */
export interface HttpRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

export type SendOutcome =
  | { ok: true; status: number }
  | { ok: false; status?: number; error: string; retryable: boolean };

/** The part of `fetch` a sender needs; the global `fetch` fits, tests may pass their own. */
export type FetchLike = (
  url: string,
  init: { method: 'POST'; headers: Record<string, string>; body: string; signal: AbortSignal; redirect: 'manual' },
) => Promise<{ status: number; text(): Promise<string> }>;

// A receiver that is down or overloaded may recover; one that rejects the request will not.
const RETRYABLE_4XX = new Set([408, 425, 429]);

/**
 * POSTs one request and says what came of it; never throws. Redirects are not followed: the
 * signature and the routing key would go to wherever the redirect points.
 */
export async function postJson(fetchFn: FetchLike, req: HttpRequest, timeoutMs: number): Promise<SendOutcome> {
  // Stored by a server that accepted it: fetch refuses it, and it would show in the error.
  if (hasUserInfo(req.url)) return { ok: false, error: 'the sink URL carries user:password@, which is never sent: configure the sink again without it', retryable: false };
  let res;
  try {
    res = await fetchFn(req.url, { method: 'POST', headers: req.headers, body: req.body, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
  } catch (err) {
    const name = (err as Error | undefined)?.name;
    if (name === 'TimeoutError' || name === 'AbortError') return { ok: false, error: `no answer within ${timeoutMs} ms`, retryable: true };
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return { ok: false, error: `cannot reach ${origin(req.url)}: ${scrubUrls(cause?.code ?? cause?.message ?? (err as Error).message)}`, retryable: true };
  }
  let text = '';
  try {
    text = (await res.text()).slice(0, 300);
  } catch {
    // the status is what counts; a body cut short changes nothing
  }
  if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status };
  const said = text.trim() === '' ? '' : `: ${scrubUrls(text.trim().replace(/\s+/g, ' '))}`;
  if (res.status >= 300 && res.status < 400) return { ok: false, status: res.status, error: `answered a redirect (${res.status}); configure the final URL${said}`, retryable: false };
  const retryable = res.status >= 500 || RETRYABLE_4XX.has(res.status);
  return { ok: false, status: res.status, error: `answered ${res.status}${said}`, retryable };
}

/** Only the origin goes into messages: a webhook URL's path is often its credential (Slack). */
function origin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'the sink';
  }
}
