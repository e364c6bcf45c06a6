// The server's command line: the overview and the dispatch. Each command (its options, help text
// and body) is a file in commands/, loaded only when it runs or its help is asked for.
import { runLazyCommandLine } from '../shared/command-line.js';
import type { Command } from '../shared/command-line.js';
import type { ServerCliIo } from './commands/common.js';

export type { ServerCliIo } from './commands/common.js';

const USAGE = `quicksand-server — keeps the fleet's drift history and tells cattle from pets

Usage:
  quicksand-server start [--db FILE|URL] [--port N] [--host ADDR] [--retention-days N] [--digest-sink ID]
                        [--alert-throttle N/DURATION] [--alert-dedup DURATION]
  quicksand-server enroll-secret [--expires DURATION] [--uses N] [--db FILE]
  quicksand-server enroll-secret list|revoke ID [--db FILE]
  quicksand-server token create --role admin|analyst|auditor [--name TEXT] [--db FILE]
  quicksand-server token create --user NAME [--name TEXT] [--db FILE]
  quicksand-server token list|revoke ID [--db FILE]
  quicksand-server user add NAME --role ROLE [--password-stdin] [--db FILE]
  quicksand-server user list|disable NAME|enable NAME|passwd NAME [--db FILE]
  quicksand-server agent revoke AGENT_ID [--db FILE]
  quicksand-server export --from ISO --to ISO [--image NAME|--label K=V|--host ID] --format F --out FILE
  quicksand-server verify-export FILE [--signature FILE.sig.json] [--public-key KEY]
  quicksand-server migrate [--db FILE|URL]
  quicksand-server help COMMAND

Commands:
  start          serve the API and the agent stream on one port
  enroll-secret  print a new enrolment secret for \`quicksand-agent enroll\`; list, revoke
  token          create, list or revoke API tokens (Authorization: Bearer TOKEN)
  user           the console's users: add, list, disable, enable, passwd
  agent revoke   revoke an agent's token; its connection is refused from now on
  export         write a signed compliance export of a period (csv, json, html, pdf, ocsf)
  verify-export  check an export against its signature (exit 0 valid, 1 invalid, 2 error)
  migrate        bring the database's schema up to date (SQLite file or postgres:// URL)

Run \`quicksand-server COMMAND --help\` for the options of one command.
`;

/** Every command, in the order error messages list them: `commands/<name>.ts`. */
export const COMMANDS: Record<string, () => Promise<Command<ServerCliIo>>> = {
  start: () => import('./commands/start.js'),
  'enroll-secret': () => import('./commands/enroll-secret.js'),
  token: () => import('./commands/token.js'),
  user: () => import('./commands/user.js'),
  agent: () => import('./commands/agent.js'),
  export: () => import('./commands/export.js'),
  'verify-export': () => import('./commands/verify-export.js'),
  migrate: () => import('./commands/migrate.js'),
};

/** Runs one server command line; `start` returns only when the server has stopped. */
export async function runServerCli(argv: string[], io: ServerCliIo): Promise<number> {
  return runLazyCommandLine('quicksand-server', USAGE, COMMANDS, argv, io);
}
