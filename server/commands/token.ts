// `quicksand-server token create --role R [--name T] | list | revoke ID`: API tokens. Creation and revocation are audited.
import { API_ROLES } from '../../shared/api.js';
import type { ApiRoleName } from '../../shared/api.js';
import { QuicksandError } from '../../shared/errors.js';
import type { OptionValues } from '../../shared/command-line.js';
import { splitCredential } from '../secrets.js';
import { COMMON, DB_HELP, EXIT_OK, cliActor, database, withStore } from './common.js';
import type { ServerCliIo } from './common.js';
import { MAX_TOKEN_NAME as MAX_NAME, checkTokenName, createUserTokenAudited, revokeApiTokenAudited } from '../admin/accounts.js';


export const help = `Usage: quicksand-server token create --role admin|analyst|auditor [--name TEXT] [--db FILE]
       quicksand-server token create --user NAME [--name TEXT] [--db FILE]
       quicksand-server token list [--db FILE]
       quicksand-server token revoke ID [--db FILE]

Prints a new API token. Send it as \`Authorization: Bearer TOKEN\`.
Roles: admin (everything), analyst (triage, scan-now), auditor (read only).
\`list\` shows every token's id, role, name and whether it was revoked; \`revoke\`
ends one (the id is the part between the dots: qst.ID.SECRET).
Creating and revoking are in the audit log (token-create, token-revoke, by cli:USER).

Options:
  --role ROLE           admin, analyst or auditor
  --user NAME           a console user's token instead: it carries that user's role (as it
                        is when used), stops while the user is disabled, and the audit log
                        names the user
  --name TEXT           whose token it is, e.g. "Q3 audit, Jane": the audit log names
                        every act done with it by this name (up to ${MAX_NAME} characters)
${DB_HELP}
Example:
  quicksand-server token create --role auditor --name "Q3 audit, Jane"
`;

export const options = { ...COMMON, role: { type: 'string' }, user: { type: 'string' }, name: { type: 'string' } } as const;

export async function run(values: OptionValues, positionals: string[], io: ServerCliIo): Promise<number> {
  const [verb, id, ...rest] = positionals;
  if (rest.length > 0) throw new QuicksandError('USAGE', `unexpected argument "${rest[0]}"`);
  if (verb === 'list' && id === undefined) {
    return withStore(database(values), async (store) => {
      for (const t of await store.listApiTokens()) io.stdout(`${t.id}  ${t.role.padEnd(7)}  created ${t.createdAt}${t.revokedAt === null ? '' : `  revoked ${t.revokedAt}`}${t.user === null ? '' : `  user ${t.user}`}${t.name === null ? '' : `  name ${JSON.stringify(t.name)}`}\n`);
      return EXIT_OK;
    });
  }
  if (verb === 'revoke' && id !== undefined) {
    return withStore(database(values), async (store) => {
      const now = new Date();
      await revokeApiTokenAudited(store, id, cliActor(), now);
      io.stdout(`revoked API token ${id}\n`);
      return EXIT_OK;
    });
  }
  if (verb !== 'create' || id !== undefined) throw new QuicksandError('USAGE', 'expected `token create --role ROLE`, `token create --user NAME`, `token list` or `token revoke ID`');
  const user = (values as { user?: string }).user;
  if (user !== undefined) {
    if ((values as { role?: string }).role !== undefined) throw new QuicksandError('USAGE', "--user and --role: a user's token carries the user's role; pass one of them");
    const name = parseName((values as { name?: string }).name);
    return withStore(database(values), async (store) => {
      const now = new Date();
      const { token } = await createUserTokenAudited(store, { user, name, actor: cliActor(), now });
      io.stdout(`${token}\n`);
      return EXIT_OK;
    });
  }
  const role = (values as { role?: string }).role;
  if (role === undefined || !(API_ROLES as readonly string[]).includes(role)) throw new QuicksandError('USAGE', `--role must be one of ${API_ROLES.join(', ')}`);
  const name = parseName((values as { name?: string }).name);
  return withStore(database(values), async (store) => {
    const now = new Date();
    const token = await store.createApiToken(role as ApiRoleName, now, name);
    await store.triage.audit({ actor: cliActor(), action: 'token-create', target: `token:${splitCredential(token, 'qst')!.id}`, detail: { role, name: name ?? null }, now });
    io.stdout(`${token}\n`);
    return EXIT_OK;
  });
}

const parseName = (text: string | undefined) => checkTokenName(text, '--name');
