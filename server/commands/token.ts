// `quicksand-server token create`: print a new API token of a role.
import { API_ROLES } from '../../shared/api.js';
import type { ApiRoleName } from '../../shared/api.js';
import { QuicksandError } from '../../shared/errors.js';
import type { OptionValues } from '../../shared/command-line.js';
import { COMMON, DB_HELP, EXIT_OK, database, withStore } from './common.js';
import type { ServerCliIo } from './common.js';

export const help = `Usage: quicksand-server token create --role admin|analyst|auditor [--db FILE]

Prints a new API token. Send it as \`Authorization: Bearer TOKEN\`.
Roles: admin (everything), analyst (triage, scan-now), auditor (read only).

Options:
  --role ROLE           admin, analyst or auditor
${DB_HELP}`;

export const options = { ...COMMON, role: { type: 'string' } } as const;

export async function run(values: OptionValues, positionals: string[], io: ServerCliIo): Promise<number> {
  if (positionals[0] !== 'create' || positionals.length > 1) throw new QuicksandError('USAGE', 'expected `token create --role ROLE`');
  const role = (values as { role?: string }).role;
  if (role === undefined || !(API_ROLES as readonly string[]).includes(role)) throw new QuicksandError('USAGE', `--role must be one of ${API_ROLES.join(', ')}`);
  return withStore(database(values), (store) => {
    io.stdout(`${store.createApiToken(role as ApiRoleName, new Date())}\n`);
    return EXIT_OK;
  });
}
