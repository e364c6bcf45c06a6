// `quicksand-server user add NAME --role R [--password-stdin] | list | disable NAME | enable NAME
// | passwd NAME [--password-stdin] | role NAME --role R`: the console's users. Every change is audited.
import { API_ROLES } from '../../shared/api.js';
import type { ApiRoleName } from '../../shared/api.js';
import { QuicksandError } from '../../shared/errors.js';
import type { OptionValues } from '../../shared/command-line.js';
import { MAX_PASSWORD, generatePassword, passwordProblem } from '../passwords.js';
import { COMMON, DB_HELP, EXIT_OK, cliActor, database, withStore } from './common.js';
import type { ServerCliIo } from './common.js';
import { addUserAudited, checkUserName, setPasswordAudited, setUserDisabledAudited, setUserRoleAudited } from '../admin/accounts.js';

export const help = `Usage: quicksand-server user add NAME --role admin|analyst|auditor [--password-stdin] [--db FILE]
       quicksand-server user list [--db FILE]
       quicksand-server user disable|enable NAME [--db FILE]
       quicksand-server user passwd NAME [--password-stdin] [--db FILE]
       quicksand-server user role NAME --role admin|analyst|auditor [--db FILE]

Console users (log in at the server's URL). Without --password-stdin a password is
generated and printed once; only its scrypt hash is kept. \`disable\` ends the user's
sessions and API tokens until \`enable\`; \`passwd\` ends every session of the user;
\`role\` gives the user another role, which their sessions and API tokens carry from
their next request. Each change is in the audit log (user-add, user-disable,
user-enable, user-passwd, user-role).

Options:
  --role ROLE           admin, analyst or auditor
  --password-stdin      read the password from standard input (one line, at least 12 characters)
${DB_HELP}
Example:
  quicksand-server user add jane --role analyst
`;

export const options = { ...COMMON, role: { type: 'string' }, 'password-stdin': { type: 'boolean' } } as const;

/** The password to set: read from stdin, or generated (then printed once). */
async function password(values: OptionValues, io: ServerCliIo): Promise<{ text: string; generated: boolean }> {
  if ((values as { 'password-stdin'?: boolean })['password-stdin'] !== true) return { text: generatePassword(), generated: true };
  if (io.readStdin === undefined) throw new QuicksandError('USAGE', '--password-stdin: no standard input to read');
  const text = (await io.readStdin(MAX_PASSWORD + 2)).replace(/\r?\n$/, '');
  const problem = passwordProblem(text);
  if (problem !== null) throw new QuicksandError('USAGE', `--password-stdin: ${problem}`);
  return { text, generated: false };
}

const userName = checkUserName;

function chosenRole(values: OptionValues): ApiRoleName {
  const role = (values as { role?: string }).role;
  if (role === undefined || !(API_ROLES as readonly string[]).includes(role)) throw new QuicksandError('USAGE', `--role must be one of ${API_ROLES.join(', ')}`);
  return role as ApiRoleName;
}

export async function run(values: OptionValues, positionals: string[], io: ServerCliIo): Promise<number> {
  const [verb, rawName, ...rest] = positionals;
  if (rest.length > 0) throw new QuicksandError('USAGE', `unexpected argument "${rest[0]}"`);
  const actor = cliActor();
  if (verb === 'list' && rawName === undefined) {
    return withStore(database(values), async (store) => {
      for (const u of await store.listUsers()) {
        io.stdout(`${u.name}  ${u.role.padEnd(7)}  created ${u.createdAt}${u.lastLoginAt === null ? '' : `  last login ${u.lastLoginAt}`}${u.disabledAt === null ? '' : `  disabled ${u.disabledAt}`}\n`);
      }
      return EXIT_OK;
    });
  }
  if (verb === 'add') {
    const name = userName(rawName);
    const role = chosenRole(values);
    return withStore(database(values), async (store) => {
      const pw = await password(values, io);
      const now = new Date();
      await addUserAudited(store, { name, role: role as ApiRoleName, password: pw.text, actor, now });
      io.stdout(pw.generated ? `added ${role} ${name}; password (shown once): ${pw.text}\n` : `added ${role} ${name}\n`);
      return EXIT_OK;
    });
  }
  if (verb === 'disable' || verb === 'enable') {
    const name = userName(rawName);
    return withStore(database(values), async (store) => {
      const now = new Date();
      await setUserDisabledAudited(store, { name, disabled: verb === 'disable', actor, now });
      io.stdout(`${verb}d ${name}\n`);
      return EXIT_OK;
    });
  }
  if (verb === 'passwd') {
    const name = userName(rawName);
    return withStore(database(values), async (store) => {
      const pw = await password(values, io);
      const now = new Date();
      await setPasswordAudited(store, { name, password: pw.text, actor, now });
      io.stdout(pw.generated ? `new password of ${name} (shown once): ${pw.text}\n` : `password of ${name} set\n`);
      return EXIT_OK;
    });
  }
  if (verb === 'role') {
    const name = userName(rawName);
    const role = chosenRole(values);
    return withStore(database(values), async (store) => {
      await setUserRoleAudited(store, { name, role, actor, now: new Date() });
      io.stdout(`${name} is now ${role}\n`);
      return EXIT_OK;
    });
  }
  throw new QuicksandError('USAGE', 'expected `user add NAME --role ROLE`, `user list`, `user disable NAME`, `user enable NAME`, `user passwd NAME` or `user role NAME --role ROLE`');
}
