// Ids for rows that are only ever appended (alert deliveries, planned ones with every alerted
// report): a random UUID as a primary key puts each insert on a random page of its index, one
// more dirty page per row for the commit to write; one that starts with the time lands beside
// the last one.
import { randomUUID } from 'node:crypto';

/** A version 7 UUID (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits. */
export function timeOrderedUuid(nowMs: number = Date.now()): string {
  // The random part is a version 4 UUID's: the same variant bits, and randomUUID draws its bytes
  // from a cache filled in bulk, where randomBytes(16) asked OpenSSL for every id.
  const random = randomUUID();
  const time = nowMs.toString(16).padStart(12, '0');
  return `${time.slice(0, 8)}-${time.slice(8)}-7${random.slice(15)}`;
}
