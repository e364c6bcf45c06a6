// Sink configurations hold credentials of other systems (webhook secrets, routing keys, Slack
// URLs): they are stored encrypted with AES-256-GCM under a key kept beside the database, readable
// by the server's user only. A copy of the database alone holds no usable credential.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { Database as Db } from 'better-sqlite3';
import { QuicksandError } from '../../shared/errors.js';

const PREFIX = 'enc:v1:';
const KEY_BYTES = 32;
const keys = new Map<string, Buffer>();

/** The key file of a database file: in the data folder, beside it. */
export function sinkKeyFile(dbFile: string): string {
  return `${dbFile}.sinks.key`;
}

/** Loads the database's key, creating it (mode 0600) on first use. */
export function sinkKeyOf(db: Db): Buffer {
  const cached = keys.get(db.name);
  if (cached !== undefined) return cached;
  const key = db.memory ? randomBytes(KEY_BYTES) : sinkKeyFromFile(sinkKeyFile(db.name));
  keys.set(db.name, key);
  return key;
}

/** Loads the key kept in `file`, creating it (mode 0600) on first use. */
export function sinkKeyFromFile(file: string): Buffer {
  let key: Buffer;
  try {
    const fd = openSync(file, 'wx', 0o600);
    key = randomBytes(KEY_BYTES);
    writeSync(fd, key);
    closeSync(fd);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new QuicksandError('DB_UNUSABLE', `cannot create the sink key ${file}: ${(err as Error).message}`);
    key = readFileSync(file);
  }
  if (key.length !== KEY_BYTES) throw new QuicksandError('DB_UNUSABLE', `the sink key ${file} is not ${KEY_BYTES} bytes: restore it from the backup taken with the database`);
  return key;
}

/** True when a stored config is still plaintext (written by a server before encryption). */
export function isPlaintext(stored: string): boolean {
  return !stored.startsWith(PREFIX);
}

/** Encrypts a sink's config; the sink id is bound in, so a row cannot be moved to another id. */
export function sealSink(key: Buffer, id: string, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(id));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return PREFIX + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64');
}

export function openSink(key: Buffer, id: string, stored: string): string {
  if (isPlaintext(stored)) return stored;
  const raw = Buffer.from(stored.slice(PREFIX.length), 'base64');
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
  decipher.setAAD(Buffer.from(id));
  decipher.setAuthTag(raw.subarray(12, 28));
  try {
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  } catch {
    throw new QuicksandError('DB_UNUSABLE', `sink ${id} cannot be decrypted: the sink key is not the one it was stored with`);
  }
}
