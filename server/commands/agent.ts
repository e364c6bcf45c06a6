// `quicksand-server agent revoke`: revoke an agent's token; its connection is refused from now on.
import { QuicksandError } from '../../shared/errors.js';
import type { OptionValues } from '../../shared/command-line.js';
import { COMMON, DB_HELP, EXIT_OK, database, withStore } from './common.js';
import type { ServerCliIo } from './common.js';

export const help = `Usage: quicksand-server agent revoke AGENT_ID [--db FILE]

Revokes an agent's token: its stream upgrade is refused with 401 from now on.
A running server also accepts DELETE /api/v1/agents/AGENT_ID (admin).

Options:
${DB_HELP}`;

export const options = { ...COMMON } as const;

export async function run(values: OptionValues, positionals: string[], io: ServerCliIo): Promise<number> {
  if (positionals[0] !== 'revoke' || positionals.length !== 2) throw new QuicksandError('USAGE', 'expected `agent revoke AGENT_ID`');
  const id = positionals[1]!;
  return withStore(database(values), (store) => {
    if (!store.revokeAgent(id, new Date())) throw new QuicksandError('NOT_FOUND', `agent ${id} is not known or already revoked`);
    io.stdout(`revoked agent ${id}\n`);
    return EXIT_OK;
  });
}
