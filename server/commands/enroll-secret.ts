// `quicksand-server enroll-secret [--expires D] [--uses N] | list | revoke ID`: enrolment secrets
// for `quicksand-agent enroll`, with an expiry and a use count, listed and revoked. Audited.
import { QuicksandError } from '../../shared/errors.js';
import type { OptionValues } from '../../shared/command-line.js';
import { parseDuration } from '../../shared/duration.js';
import { COMMON, DB_HELP, EXIT_OK, cliActor, database, withStore } from './common.js';
import type { ServerCliIo } from './common.js';
import { createEnrollSecretAudited, revokeEnrollSecretAudited } from '../admin/accounts.js';

export const help = `Usage: quicksand-server enroll-secret [--expires DURATION] [--uses N] [--db FILE]
       quicksand-server enroll-secret list [--db FILE]
       quicksand-server enroll-secret revoke ID [--db FILE]

Prints a new enrolment secret. Give it to \`quicksand-agent enroll --secret S\` (or
install.sh) on each host; the host gets its own token in exchange. Only a hash
of the secret is stored. \`list\` shows every secret's id, limits and state
(active, expired, used-up, revoked); \`revoke\` ends one. Hosts already enrolled
keep their tokens. Creating and revoking are in the audit log (by cli:USER).

Options:
  --expires DURATION    the secret is refused after this long (24h, 7d, 1h30m);
                        default: never
  --uses N              the secret enrols at most N hosts; default: any number
${DB_HELP}`;

export const options = { ...COMMON, expires: { type: 'string' }, uses: { type: 'string' } } as const;

export async function run(values: OptionValues, positionals: string[], io: ServerCliIo): Promise<number> {
  const v = values as { expires?: string; uses?: string };
  const [verb, id, ...rest] = positionals;
  if (rest.length > 0) throw new QuicksandError('USAGE', `unexpected argument "${rest[0]}"`);
  if (verb !== undefined && (v.expires !== undefined || v.uses !== undefined)) throw new QuicksandError('USAGE', '--expires and --uses go with a new secret, not with list or revoke');
  return withStore(database(values), async (store) => {
    const now = new Date();
    if (verb === 'list') {
      if (id !== undefined) throw new QuicksandError('USAGE', `unexpected argument "${id}"`);
      for (const s of await store.listEnrollSecrets(now)) {
        io.stdout(`${s.id}  ${s.state.padEnd(8)}  uses ${s.uses}/${s.maxUses ?? 'any'}  expires ${s.expiresAt ?? 'never'}  created ${s.createdAt}\n`);
      }
      return EXIT_OK;
    }
    if (verb === 'revoke') {
      if (id === undefined) throw new QuicksandError('USAGE', 'expected `enroll-secret revoke ID` (the id from `enroll-secret list`)');
      await revokeEnrollSecretAudited(store, id, cliActor(), now);
      io.stdout(`revoked enrolment secret ${id}\n`);
      return EXIT_OK;
    }
    if (verb !== undefined) throw new QuicksandError('USAGE', `unknown action "${verb}": expected list, revoke ID, or none for a new secret`);
    const ms = v.expires === undefined ? undefined : parseDuration(v.expires);
    if (ms === null) throw new QuicksandError('USAGE', `--expires: expected a duration like 24h, 7d or 1h30m (units s, m, h, d), got "${v.expires}"`);
    if (v.uses !== undefined && !/^[1-9]\d{0,5}$/.test(v.uses)) throw new QuicksandError('USAGE', `--uses: expected a whole number from 1 to 999999, got "${v.uses}"`);
    const { secret } = await createEnrollSecretAudited(store, { expires: v.expires, uses: v.uses === undefined ? undefined : Number(v.uses), actor: cliActor(), now });
    io.stdout(`${secret}\n`);
    return EXIT_OK;
  });
}
