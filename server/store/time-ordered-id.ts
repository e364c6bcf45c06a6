// Ids for rows that are only ever appended (alert deliveries, planned ones with every alerted
// report): a random UUID as a primary key puts each insert on a random page of its index, one
// more dirty page per row for the commit to write; one that starts with the time lands beside
// the last one.
import { randomBytes } from 'node:crypto';

/** A version 7 UUID (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits. */
export function timeOrderedUuid(nowMs: number = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(nowMs, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
