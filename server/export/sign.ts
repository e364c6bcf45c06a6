// Signed exports: an ed25519 key in the server's data folder (node:crypto), and in-toto
// Statements v1 in DSSE envelopes. PAE and the envelope follow the DSSE spec (protocol.md):
// PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, LEN in ASCII decimal bytes.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { QuicksandError } from '../../shared/errors.js';

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const EXPORT_PREDICATE = 'urn:quicksand:export:v1';
export const HOST_PREDICATE = 'urn:quicksand:host-attestation:v1';
export const SIGNING_KEY_FILE = 'export-signing-key.pem';

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** sha256 (hex) of the public key's SubjectPublicKeyInfo. */
  keyid: string;
  publicPem: string;
}

export const keyidOf = (publicKey: KeyObject): string => createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');

function fromPrivate(privateKey: KeyObject): SigningKey {
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyid: keyidOf(publicKey), publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/**
 * The server's key in `dataDir`, made there on first use (0600: only the server's user reads it).
 * Written whole to a temporary name and linked into place: two processes starting at once on one
 * folder end with one key, and neither reads half a file.
 */
export function loadOrCreateSigningKey(dataDir: string): SigningKey {
  const file = path.join(dataDir, SIGNING_KEY_FILE);
  try {
    if (!existsSync(file)) {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
      writeFileSync(tmp, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
      try {
        linkSync(tmp, file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      } finally {
        rmSync(tmp, { force: true });
      }
    }
    return fromPrivate(createPrivateKey(readFileSync(file)));
  } catch (err) {
    throw new QuicksandError('DB_UNUSABLE', `the export signing key ${file} cannot be read or made: ${(err as Error).message}`);
  }
}

export function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

export interface Statement {
  _type: typeof STATEMENT_TYPE;
  subject: Array<{ name: string; digest: { sha256: string } }>;
  predicateType: string;
  predicate: Record<string, unknown>;
}

const envelopeSchema = z.strictObject({
  payload: z.base64().max(1_000_000),
  payloadType: z.string().max(200),
  signatures: z.array(z.strictObject({ keyid: z.string().max(200).optional(), sig: z.base64().max(1000) })).min(1).max(16),
});
export type Envelope = z.infer<typeof envelopeSchema>;

const statementSchema = z.object({
  _type: z.literal(STATEMENT_TYPE),
  subject: z.array(z.object({ name: z.string().max(1000), digest: z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/) }) })).min(1).max(16),
  predicateType: z.string().max(200),
  predicate: z.record(z.string(), z.unknown()),
});

export function signStatement(key: SigningKey, statement: Statement): Envelope {
  const payload = Buffer.from(JSON.stringify(statement), 'utf8');
  return { payload: payload.toString('base64'), payloadType: IN_TOTO_PAYLOAD_TYPE, signatures: [{ keyid: key.keyid, sig: sign(null, pae(IN_TOTO_PAYLOAD_TYPE, payload), key.privateKey).toString('base64') }] };
}

export function exportStatement(name: string, sha256: string, predicate: { period: { from: string; to: string }; scope: string; format: string; generatedAt: string; exportedBy: string }): Statement {
  return { _type: STATEMENT_TYPE, subject: [{ name, digest: { sha256 } }], predicateType: EXPORT_PREDICATE, predicate };
}

export type Verdict = { valid: true; message: string; statement: Statement } | { valid: false; message: string };

/**
 * Checks an export against its envelope and a public key: the signature over the statement, then
 * the statement's digest against the file's bytes. Throws (a usage error) only when the envelope
 * or key cannot be read at all.
 */
export function verifyExport(file: { name: string; bytes: Buffer }, envelopeText: string, publicKeyPem: string): Verdict {
  let envelope: Envelope;
  try {
    const parsed = envelopeSchema.safeParse(JSON.parse(envelopeText));
    if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join('.') || 'envelope'}: ${i.message}`).join('; '));
    envelope = parsed.data;
  } catch (err) {
    throw new Error(`the signature file is not a DSSE envelope: ${(err as Error).message}`);
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(publicKeyPem);
  } catch {
    throw new Error('the public key is not a PEM public key (fetch it from GET /api/v1/signing-key)');
  }
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new Error(`the public key is ${publicKey.asymmetricKeyType ?? 'of no known type'}, not ed25519`);
  const keyid = keyidOf(publicKey);
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) return { valid: false, message: `the envelope carries ${envelope.payloadType}, not an in-toto statement` };
  const payload = Buffer.from(envelope.payload, 'base64');
  const signed = envelope.signatures.some((s) => verify(null, pae(envelope.payloadType, payload), publicKey, Buffer.from(s.sig, 'base64')));
  if (!signed) {
    const by = envelope.signatures.map((s) => s.keyid ?? 'unnamed').join(', ');
    return { valid: false, message: `INVALID: the signature was not made by this public key (key ${keyid.slice(0, 16)}; the envelope names ${by.slice(0, 80)}), or the signed statement was changed` };
  }
  const parsed = statementSchema.safeParse(JSON.parse(payload.toString('utf8')));
  if (!parsed.success) return { valid: false, message: 'INVALID: the signed payload is not an in-toto Statement v1' };
  const statement = parsed.data as Statement;
  const digest = createHash('sha256').update(file.bytes).digest('hex');
  const subject = statement.subject[0]!;
  if (subject.digest.sha256 !== digest) {
    return { valid: false, message: `INVALID: ${file.name} has sha256 ${digest}, the signature covers ${subject.digest.sha256} (${subject.name}): the file was changed after it was signed, or this is the signature of another export` };
  }
  const p = statement.predicate as { period?: { from?: string; to?: string }; scope?: string; format?: string; generatedAt?: string };
  return {
    valid: true,
    statement,
    message: `valid: ${file.name} (sha256 ${digest}) is the ${p.format ?? ''} export "${subject.name}" of ${p.period?.from ?? '?'} to ${p.period?.to ?? '?'}, scope ${p.scope ?? '?'}, made ${p.generatedAt ?? '?'}, signed by key ${keyid.slice(0, 16)}`,
  };
}
