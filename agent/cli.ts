// The agent's command line: the overview and the dispatch. Each command (its options, help text
// and body) is a file in commands/, loaded only when it runs or its help is asked for: a scan or
// manifest run then starts without the daemon's modules (ws, chokidar, node-cron) or the
// importers (about 70 ms of a 0.3 s scan).
import { runLazyCommandLine } from '../shared/command-line.js';
import type { Command } from '../shared/command-line.js';
import type { CliIo } from './commands/common.js';

export type { CliIo } from './commands/common.js';
export { EXIT_ERROR } from './commands/common.js';

const USAGE = `quicksand-agent — does this host still match its image?

Usage:
  quicksand-agent manifest --root DIR --out FILE [--name N --image-version V] [--state DIR]
  quicksand-agent manifest --from-kiwi FILE.packages [--verified FILE.verified] --out FILE
  quicksand-agent manifest --from-sbom FILE.json --out FILE
  quicksand-agent scan --root DIR --manifest FILE [--json] [--send] [--state DIR]
  quicksand-agent audit [--root DIR] [--state DIR] [--json]
  quicksand-agent enroll --server URL --secret S [--state DIR]
  quicksand-agent run [--root DIR] [--manifest FILE] [--state DIR] [--label NAME=VALUE]
  quicksand-agent ticket [ID --for DURATION | --clear] [--state DIR]
  quicksand-agent help COMMAND

Commands:
  manifest  record what an image holds (packages, files, digests) as a manifest
  scan      compare a host or image root with a manifest and report the drift
  audit     audit this machine: the first run takes a baseline manifest into the
            state folder, every later run scans against it
  enroll    exchange an enrolment secret for this host's identity on a server
  run       the daemon: scan on start and on a schedule, stream reports to the server
  ticket    declare the change ticket of the changes you are about to make on this host

Exit codes: 0 no drift, 1 drift found, 2 error.
Run \`quicksand-agent COMMAND --help\` for the options of one command.
`;

/** Every command, in the order `--help` and error messages list them: `commands/<name>.ts`. */
export const COMMANDS: Record<string, () => Promise<Command<CliIo>>> = {
  manifest: () => import('./commands/manifest.js'),
  scan: () => import('./commands/scan.js'),
  audit: () => import('./commands/audit.js'),
  enroll: () => import('./commands/enroll.js'),
  run: () => import('./commands/run.js'),
  ticket: () => import('./commands/ticket.js'),
};

/** Runs one agent command line and returns its exit code. Never throws for a user's mistake. */
export async function runAgentCli(argv: string[], io: CliIo): Promise<number> {
  return runLazyCommandLine('quicksand-agent', USAGE, COMMANDS, argv, io);
}
