// A token bucket: `ratePerSec` admissions a second on average, bursts up to `burst`. Pure apart
// from the clock it is given, so tests can drive it.

export interface RateLimiter {
  /** True when admitted; otherwise the number of seconds after which a retry may succeed. */
  take(): true | number;
}

export function createRateLimiter(ratePerSec: number, burst: number, nowMs: () => number): RateLimiter {
  let tokens = burst;
  let last = nowMs();
  return {
    take() {
      const t = nowMs();
      tokens = Math.min(burst, tokens + ((t - last) / 1000) * ratePerSec);
      last = t;
      if (tokens >= 1) {
        tokens -= 1;
        return true;
      }
      return Math.max(1, Math.ceil((1 - tokens) / ratePerSec));
    },
  };
}
