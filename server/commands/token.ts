// `quicksand-server token create --role R | list | revoke ID`: API tokens. Revocation is audited.
import { API_ROLES } from '../../shared/api.js';
import type { ApiRoleName } from '../../shared/api.js';
import { QuicksandError } from '../../shared/errors.js';
import type { OptionValues } from '../../shared/command-line.js';
import { COMMON, DB_HELP, EXIT_OK, database, withStore } from './common.js';
import type { ServerCliIo } from './common.js';

export const help = `Usage: quicksand-server token create --role admin|analyst|auditor [--db FILE]
       quicksand-server token list [--db FILE]
       quicksand-server token revoke ID [--db FILE]

Prints a new API token. Send it as \`Authorization: Bearer TOKEN\`.
Roles: admin (everything), analyst (triage, scan-now), auditor (read only).
\`list\` shows every token's id, role and whether it was revoked; \`revoke\` ends one
(the id is the part between the dots: qst.ID.SECRET).

Options:
  --role ROLE           admin, analyst or auditor
${DB_HELP}`;

export const options = { ...COMMON, role: { type: 'string' } } as const;

export async function run(values: OptionValues, positionals: string[], io: ServerCliIo): Promise<number> {
  const [verb, id, ...rest] = positionals;
  if (rest.length > 0) throw new QuicksandError('USAGE', `unexpected argument "${rest[0]}"`);
  if (verb === 'list' && id === undefined) {
    return withStore(database(values), (store) => {
      for (const t of store.listApiTokens()) io.stdout(`${t.id}  ${t.role.padEnd(7)}  created ${t.createdAt}${t.revokedAt === null ? '' : `  revoked ${t.revokedAt}`}\n`);
      return EXIT_OK;
    });
  }
  if (verb === 'revoke' && id !== undefined) {
    return withStore(database(values), (store) => {
      const now = new Date();
      if (!store.revokeApiToken(id, now)) throw new QuicksandError('NOT_FOUND', `API token ${id} is not known or already revoked`);
      store.triage.audit({ actor: { id: 'cli', role: 'admin' }, action: 'token-revoke', target: `token:${id}`, now });
      io.stdout(`revoked API token ${id}\n`);
      return EXIT_OK;
    });
  }
  if (verb !== 'create' || id !== undefined) throw new QuicksandError('USAGE', 'expected `token create --role ROLE`, `token list` or `token revoke ID`');
  const role = (values as { role?: string }).role;
  if (role === undefined || !(API_ROLES as readonly string[]).includes(role)) throw new QuicksandError('USAGE', `--role must be one of ${API_ROLES.join(', ')}`);
  return withStore(database(values), (store) => {
    io.stdout(`${store.createApiToken(role as ApiRoleName, new Date())}\n`);
    return EXIT_OK;
  });
}
