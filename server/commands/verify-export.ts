// `quicksand-server verify-export FILE`: is this export the one the server signed?
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { QuicksandError } from '../../shared/errors.js';
import type { OptionValues } from '../../shared/command-line.js';
import { SIGNING_KEY_FILE, loadOrCreateSigningKey, verifyExport } from '../export/sign.js';
import { COMMON, DB_HELP, EXIT_OK, database } from './common.js';
import type { ServerCliIo } from './common.js';

export const EXIT_INVALID = 1;

export const help = `Usage: quicksand-server verify-export FILE [--signature FILE.sig.json] [--public-key KEY] [--db FILE]

Checks that FILE is exactly the export the server signed: the signature over its statement
with the public key, then the statement's sha256 against FILE's bytes. Works offline.
Exit status: 0 valid, 1 invalid (changed, or signed by another key), 2 could not check.

Options:
  --signature FILE      the DSSE envelope (default: FILE.sig.json)
  --public-key KEY      the server's public key in PEM, as GET /api/v1/signing-key gives it
                        (default: the key beside --db, on the server's own machine)
${DB_HELP}
Example:
  curl -H "Authorization: Bearer $TOKEN" https://quicksand.example/api/v1/signing-key > quicksand.pem
  quicksand-server verify-export web-november.pdf --public-key quicksand.pem
`;

export const options = { ...COMMON, signature: { type: 'string' }, 'public-key': { type: 'string' } } as const;

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new QuicksandError('USAGE', `${what} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

export async function run(values: OptionValues, positionals: string[], io: ServerCliIo): Promise<number> {
  const [file, ...rest] = positionals;
  if (file === undefined) throw new QuicksandError('USAGE', 'which export? give its FILE');
  if (rest.length > 0) throw new QuicksandError('USAGE', `unexpected argument "${rest[0]}"`);
  const bytes = read(file, 'the export');
  const signature = read((values.signature as string | undefined) ?? `${file}.sig.json`, 'the signature').toString('utf8');
  let publicKey: string;
  if (values['public-key'] !== undefined) publicKey = read(values['public-key'] as string, 'the public key').toString('utf8');
  else {
    const dir = path.dirname(path.resolve(database(values)));
    if (!existsSync(path.join(dir, SIGNING_KEY_FILE))) throw new QuicksandError('USAGE', `no --public-key given and no server key in ${dir}: pass the key from GET /api/v1/signing-key`);
    publicKey = loadOrCreateSigningKey(dir).publicPem;
  }
  let verdict;
  try {
    verdict = verifyExport({ name: path.basename(file), bytes }, signature, publicKey);
  } catch (err) {
    throw new QuicksandError('USAGE', (err as Error).message);
  }
  (verdict.valid ? io.stdout : io.stderr)(`${verdict.message}\n`);
  return verdict.valid ? EXIT_OK : EXIT_INVALID;
}
