// Several server URLs (nodes of one deployment without a balancer in front): the agent tries them
// in random order, so a fleet spreads over the nodes, and moves to another when one dies.
import { QuicksandError, isQuicksandError } from '../../shared/errors.js';
import { MAX_SERVER_URLS } from '../../shared/protocol.js';

/** Every URL the agent may send to: `servers` when the configuration lists them, else `server`. */
export function serverUrls(config: { server: string; servers?: string[] | undefined }): string[] {
  return config.servers ?? [config.server];
}

/**
 * The URLs of `--server` (repeatable, each possibly a comma list), trailing slashes cut and
 * duplicates dropped, in the order given. Checked: each must be an http(s) URL.
 */
export function parseServerList(values: readonly string[]): string[] {
  const urls: string[] = [];
  for (const part of values.flatMap((v) => v.split(','))) {
    const url = part.trim().replace(/\/+$/, '');
    if (url === '') continue;
    if (!/^https?:\/\/[^/]/.test(url)) throw new QuicksandError('USAGE', `--server: expected a URL like http://quicksand.example:7410, got "${part.trim()}"`);
    if (!urls.includes(url)) urls.push(url);
  }
  if (urls.length > MAX_SERVER_URLS) throw new QuicksandError('USAGE', `--server: at most ${MAX_SERVER_URLS} URLs, got ${urls.length}`);
  return urls;
}

/** A copy in random order (Fisher–Yates). Pure: the random source is a parameter. */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * The order connections are tried in: a random order, each URL once, then a new random order.
 * `next()` after a failure or a lost connection gives another URL than the one just used whenever
 * there are several (a round never starts with the URL the last one ended on).
 */
export function serverRotation(urls: readonly string[], random: () => number): { next(): string } {
  let order: string[] = [];
  let last: string | undefined;
  return {
    next() {
      if (order.length === 0) {
        order = shuffled(urls, random);
        if (order.length > 1 && order[0] === last) order.push(order.shift()!);
      }
      last = order.shift()!;
      return last;
    },
  };
}

/**
 * Calls `call` with each URL in random order until one answers; a server that cannot be reached
 * (SERVER_UNREACHABLE) moves on to the next, any other answer is the answer.
 */
export async function withAnyServer<T>(urls: readonly string[], call: (url: string) => Promise<T>, random: () => number = Math.random): Promise<T> {
  const unreachable: string[] = [];
  for (const url of shuffled(urls, random)) {
    try {
      return await call(url);
    } catch (err) {
      if (!isQuicksandError(err) || err.code !== 'SERVER_UNREACHABLE' || urls.length === 1) throw err;
      unreachable.push(err.message);
    }
  }
  throw new QuicksandError('SERVER_UNREACHABLE', `no server could be reached: ${unreachable.join('; ')}`);
}
