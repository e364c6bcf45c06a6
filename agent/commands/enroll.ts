// `quicksand-agent enroll`: exchange an enrolment secret for this host's identity on a server.
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import type { OptionValues } from '../../shared/command-line.js';
import { QuicksandError } from '../../shared/errors.js';
import { CONFIG_NAME, readAgentConfig, writeAgentConfig } from '../deliver/config.js';
import { enrollAgent } from '../deliver/enroll.js';
import { enrollFromFile } from '../deliver/first-boot.js';
import { readMachineFacts } from '../deliver/machine.js';
import { parseServerList } from '../deliver/servers.js';
import { COMMON, DEFAULT_STATE_DIR, EXIT_CLEAN, noArguments } from './common.js';
import type { CliIo } from './common.js';

export const help = `Usage: quicksand-agent enroll --server URL --secret S [--state DIR] [--config FILE]
       quicksand-agent enroll --from FILE [--state DIR] [--config FILE]

Exchanges an enrolment secret (from \`quicksand-server enroll-secret\`) for this host's
own agent id and token, and writes them to agent.json (mode 0600). The server ties
the identity to this machine's /etc/machine-id.

Options:
  --server URL          the server, e.g. http://quicksand.example:7410; repeat it (or
                        give a comma list) for several nodes without a balancer:
                        the agent tries them in random order and moves to another
                        when one goes away
  --secret S            the enrolment secret
  --from FILE           take server and secret from FILE (the enroll.json that
                        \`install.sh --root\` puts in an image), then remove FILE: each
                        machine made from the image enrols on first boot as itself
  --state DIR           the agent's state folder (default: ${DEFAULT_STATE_DIR})
  --config FILE         where to write the identity (default: agent.json in the state folder)
  --force               enrol again even if this host already has an identity

Example:
  quicksand-agent enroll --server http://10.0.0.5:7410 --secret qse.4f2c...
`;

export const options = { ...COMMON, server: { type: 'string', multiple: true }, secret: { type: 'string' }, from: { type: 'string' }, state: { type: 'string' }, config: { type: 'string' }, force: { type: 'boolean' } } as const;

interface EnrollArgs { server?: string[]; secret?: string; from?: string; state?: string; config?: string; force?: boolean }

export async function run(values: OptionValues, positionals: string[], io: CliIo): Promise<number> {
  noArguments(positionals);
  const v = values as EnrollArgs;
  await enrollCommand(v, path.resolve(v.state ?? DEFAULT_STATE_DIR), io);
  return EXIT_CLEAN;
}

async function enrollCommand(args: EnrollArgs, state: string, io: CliIo): Promise<void> {
  const file = args.config !== undefined ? path.resolve(args.config) : path.join(state, CONFIG_NAME);
  if (args.from !== undefined) {
    if (args.server !== undefined || args.secret !== undefined) throw new QuicksandError('USAGE', '--from takes the server and secret from its file: leave out --server and --secret');
    await refuseIfEnrolled(file, args.force);
    const config = await enrollFromFile({ from: path.resolve(args.from), config: file, hostname: hostname(), machine: await readMachineFacts() });
    io.stdout(`enrolled as agent ${config.agentId} with ${config.server}; identity in ${file}\n`);
    return;
  }
  const servers = parseServerList(args.server ?? []);
  if (servers.length === 0) throw new QuicksandError('USAGE', '--server is required');
  if (args.secret === undefined || args.secret === '') throw new QuicksandError('USAGE', '--secret is required');
  await refuseIfEnrolled(file, args.force);
  const config = await enrollAgent(servers, args.secret, hostname(), (await readMachineFacts()).machineId);
  await writeAgentConfig(file, config);
  io.stdout(`enrolled as agent ${config.agentId} with ${config.server}; identity in ${file}\n`);
}

async function refuseIfEnrolled(file: string, force: boolean | undefined): Promise<void> {
  if (!existsSync(file) || force) return;
  const current = await readAgentConfig(file).catch(() => null);
  throw new QuicksandError('USAGE', `this host is already enrolled${current ? ` as agent ${current.agentId} with ${current.server}` : ''} (${file}); pass --force to enrol it again`);
}
