// When to try again after a lost connection. Pure: the random source is a parameter.

export interface BackoffOptions {
  /** The first retry comes after a random delay up to this, so a fleet does not reconnect at once. */
  firstMaxMs: number;
  baseMs: number;
  capMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { firstMaxMs: 5_000, baseMs: 2_000, capMs: 300_000 };

/**
 * Delay before reconnect attempt `attempt` (0 = the first after a loss): full jitter on the first,
 * then exponential with "equal jitter" (half fixed, half random) up to the cap. `atLeastMs`
 * honours a server's Retry-After.
 */
export function reconnectDelay(attempt: number, opts: BackoffOptions, random: () => number, atLeastMs = 0): number {
  const delay = attempt === 0 ? random() * opts.firstMaxMs : (() => {
    const exp = Math.min(opts.capMs, opts.baseMs * 2 ** Math.min(attempt - 1, 30));
    return exp / 2 + random() * (exp / 2);
  })();
  return Math.max(atLeastMs + random() * Math.min(opts.firstMaxMs, atLeastMs / 2), Math.round(delay));
}
