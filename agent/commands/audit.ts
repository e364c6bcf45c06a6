// `quicksand-agent audit`: the first run takes a baseline manifest into the state folder, every
// later run scans against it.
import path from 'node:path';
import type { OptionValues } from '../../shared/command-line.js';
import { COMMON, COST, COST_HELP, DEFAULT_STATE_DIR, EXIT_CLEAN, ensureStateDir, exists, noArguments } from './common.js';
import type { CliIo, CostArgs } from './common.js';
import { manifestCommand } from './manifest.js';
import { scanCommand } from './scan.js';

export const help = `Usage: quicksand-agent audit [--root DIR] [--state DIR] [--json]

Audits this machine in one command. The first run records a baseline manifest of
the root into the state folder (baseline.manifest.json.gz); every later run scans
the root against that baseline. Delete the baseline to take a new one.

Options:
  --root DIR            root folder to audit (default: /)
  --state DIR           the agent's state folder: baseline and stat cache
                        (default: ${DEFAULT_STATE_DIR}); files whose size, times and
                        inode did not change since they were last hashed are not read again
  --json                print the report as JSON
${COST_HELP}  -q, --quiet           no progress on stderr

Exit codes: 0 no drift (or baseline just taken), 1 drift, 2 error.
`;

export const options = { ...COMMON, ...COST, root: { type: 'string' }, json: { type: 'boolean' } } as const;

interface AuditArgs extends CostArgs { root?: string; json?: boolean; quiet?: boolean }

export async function run(values: OptionValues, positionals: string[], io: CliIo): Promise<number> {
  noArguments(positionals);
  const args = values as AuditArgs;
  const state = path.resolve(args.state ?? DEFAULT_STATE_DIR);
  const root = args.root ?? '/';
  await ensureStateDir(state);
  const baseline = path.join(state, 'baseline.manifest.json.gz');
  if (!(await exists(baseline))) {
    io.stderr(`No baseline yet: recording what ${root} holds now as its expected state.\n`);
    await manifestCommand({ ...args, state, root, out: baseline }, io);
    io.stderr(`Baseline taken. Run \`quicksand-agent audit${args.state ? ` --state ${args.state}` : ''}\` again to see what changed since.\n`);
    return EXIT_CLEAN;
  }
  return scanCommand({ ...args, state, root, manifest: baseline }, io);
}
