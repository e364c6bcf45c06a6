// `quicksand-server enroll-secret`: print a new enrolment secret for `quicksand-agent enroll`.
import { QuicksandError } from '../../shared/errors.js';
import type { OptionValues } from '../../shared/command-line.js';
import { COMMON, DB_HELP, EXIT_OK, database, withStore } from './common.js';
import type { ServerCliIo } from './common.js';

export const help = `Usage: quicksand-server enroll-secret [--db FILE]

Prints a new enrolment secret. Give it to \`quicksand-agent enroll --secret S\` (or
install.sh) on each host; the host gets its own token in exchange. Only a hash
of the secret is stored.

Options:
${DB_HELP}`;

export const options = { ...COMMON } as const;

export async function run(values: OptionValues, positionals: string[], io: ServerCliIo): Promise<number> {
  if (positionals.length > 0) throw new QuicksandError('USAGE', `unexpected argument "${positionals[0]}"`);
  return withStore(database(values), (store) => {
    io.stdout(`${store.createEnrollSecret(new Date())}\n`);
    return EXIT_OK;
  });
}
