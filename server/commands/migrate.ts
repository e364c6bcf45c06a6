// `quicksand-server migrate`: brings a database's schema up to date without starting a server,
// as a deployment step before the nodes of a new version start.
import { QuicksandError } from '../../shared/errors.js';
import type { OptionValues } from '../../shared/command-line.js';
import { describeDatabase, migrateDatabase } from '../store/open.js';
import { COMMON, DB_HELP, EXIT_OK, database } from './common.js';
import type { ServerCliIo } from './common.js';

export const help = `Usage: quicksand-server migrate [--db FILE|URL]

Applies the schema migrations the database lacks and says which, then exits. On
PostgreSQL each runs in its own transaction under a lock, so running it while nodes
start (or twice at once) applies each migration once. \`start\` does the same on its
own; run this first to upgrade a database before the nodes of the new version start.
An SQLite file is created if it does not exist.

Options:
${DB_HELP}`;

export const options = { ...COMMON } as const;

export async function run(values: OptionValues, positionals: string[], io: ServerCliIo): Promise<number> {
  if (positionals.length > 0) throw new QuicksandError('USAGE', `unexpected argument "${positionals[0]}"`);
  const db = database(values);
  const { applied, latest } = await migrateDatabase(db);
  const where = describeDatabase(db);
  io.stdout(applied.length === 0 ? `${where}: schema is up to date (version ${latest})\n` : `${where}: applied migration${applied.length === 1 ? '' : 's'} ${applied.join(', ')}; schema version ${latest}\n`);
  return EXIT_OK;
}
