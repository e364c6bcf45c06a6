// `quicksand-agent enroll`: exchange an enrolment secret for this host's identity on a server.
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import type { OptionValues } from '../../shared/command-line.js';
import { QuicksandError } from '../../shared/errors.js';
import { CONFIG_NAME, readAgentConfig, writeAgentConfig } from '../deliver/config.js';
import { enrollAgent } from '../deliver/enroll.js';
import { COMMON, DEFAULT_STATE_DIR, EXIT_CLEAN, noArguments } from './common.js';
import type { CliIo } from './common.js';

export const help = `Usage: quicksand-agent enroll --server URL --secret S [--state DIR] [--config FILE]

Exchanges an enrolment secret (from \`quicksand-server enroll-secret\`) for this host's
own agent id and token, and writes them to agent.json (mode 0600).

Options:
  --server URL          the server, e.g. http://quicksand.example:7410
  --secret S            the enrolment secret
  --state DIR           the agent's state folder (default: ${DEFAULT_STATE_DIR})
  --config FILE         where to write the identity (default: agent.json in the state folder)
  --force               enrol again even if this host already has an identity

Example:
  quicksand-agent enroll --server http://10.0.0.5:7410 --secret qse.4f2c...
`;

export const options = { ...COMMON, server: { type: 'string' }, secret: { type: 'string' }, state: { type: 'string' }, config: { type: 'string' }, force: { type: 'boolean' } } as const;

interface EnrollArgs { server?: string; secret?: string; state?: string; config?: string; force?: boolean }

export async function run(values: OptionValues, positionals: string[], io: CliIo): Promise<number> {
  noArguments(positionals);
  const v = values as EnrollArgs;
  await enrollCommand(v, path.resolve(v.state ?? DEFAULT_STATE_DIR), io);
  return EXIT_CLEAN;
}

async function enrollCommand(args: { server?: string; secret?: string; config?: string; force?: boolean }, state: string, io: CliIo): Promise<void> {
  if (args.server === undefined || args.server === '') throw new QuicksandError('USAGE', '--server is required');
  if (args.secret === undefined || args.secret === '') throw new QuicksandError('USAGE', '--secret is required');
  if (!/^https?:\/\/[^/]/.test(args.server)) throw new QuicksandError('USAGE', `--server: expected a URL like http://quicksand.example:7410, got "${args.server}"`);
  const file = args.config !== undefined ? path.resolve(args.config) : path.join(state, CONFIG_NAME);
  if (existsSync(file) && !args.force) {
    const current = await readAgentConfig(file).catch(() => null);
    throw new QuicksandError('USAGE', `this host is already enrolled${current ? ` as agent ${current.agentId} with ${current.server}` : ''} (${file}); pass --force to enrol it again`);
  }
  const config = await enrollAgent(args.server, args.secret, hostname());
  await writeAgentConfig(file, config);
  io.stdout(`enrolled as agent ${config.agentId} with ${config.server}; identity in ${file}\n`);
}
