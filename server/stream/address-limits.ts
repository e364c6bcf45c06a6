// What one source address may take of the server: upgrades per second, and sockets at once. An
// attacker on one address then costs the others nothing.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { createRateLimiter } from './rate-limit.js';
import type { RateLimiter } from './rate-limit.js';

/** Addresses remembered at most; past it the table starts over (every bucket full again). */
const MAX_ADDRESSES = 50_000;

/** A token bucket per source address. */
export function createAddressLimiter(ratePerSec: number, burst: number, nowMs: () => number): { take(address: string): true | number } {
  const buckets = new Map<string, RateLimiter>();
  return {
    take(address) {
      let bucket = buckets.get(address);
      if (bucket === undefined) {
        if (buckets.size >= MAX_ADDRESSES) buckets.clear();
        bucket = createRateLimiter(ratePerSec, burst, nowMs);
        buckets.set(address, bucket);
      }
      return bucket.take();
    },
  };
}

/** Destroys a new socket from an address that already holds `max`, HTTP and stream alike. */
export function capConnectionsPerAddress(server: Server, max: number): void {
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    const n = (open.get(address) ?? 0) + 1;
    if (n > max) {
      socket.destroy();
      return;
    }
    open.set(address, n);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });
}
