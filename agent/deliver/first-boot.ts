// First-boot enrolment: an image carries enroll.json (server and secret), never an identity.
// Each machine made from it enrols on its own first boot, with its own machine-id and hostname.
import { rm } from 'node:fs/promises';
import { QuicksandError } from '../../shared/errors.js';
import { enrollConfigSchema } from '../../shared/protocol.js';
import type { AgentConfig } from '../../shared/protocol.js';
import { readConfigFile, writeAgentConfig } from './config.js';
import { enrollAgent } from './enroll.js';
import { MACHINE_ID_FILE } from './machine.js';
import { serverUrls } from './servers.js';
import type { MachineFacts } from './machine.js';

export const ENROLL_CONFIG = '/etc/quicksand/enroll.json';

export async function readEnrollConfig(file: string): Promise<{ servers: string[]; secret: string }> {
  const c = await readConfigFile(file, enrollConfigSchema, 'enrolment file', () => new QuicksandError('AGENT_NOT_ENROLLED', `${file} does not exist: install with \`install.sh --root DIR --server URL --secret S\`, or enrol with --server and --secret`));
  return { servers: serverUrls(c).map((s) => s.replace(/\/+$/, '')), secret: c.secret };
}

/**
 * Enrols this machine with the server and secret of `from`, writes its identity to `config`,
 * then removes `from`: the secret has done its work and stays on no running host.
 */
export async function enrollFromFile(opts: { from: string; config: string; hostname: string; machine: MachineFacts }): Promise<AgentConfig> {
  const { servers, secret } = await readEnrollConfig(opts.from);
  // Without its own machine-id the identity could not be told from a clone's: wait for systemd
  // to write one (first boot) rather than enrol an identity the server cannot tie to a machine.
  if (opts.machine.machineId === undefined) {
    throw new QuicksandError('MACHINE_ID_MISSING', `${MACHINE_ID_FILE} is missing, empty or not a machine-id: this machine has not got its own yet (systemd writes it on first boot; systemd-machine-id-setup does it by hand)`);
  }
  const config = await enrollAgent(servers, secret, opts.hostname, opts.machine.machineId);
  await writeAgentConfig(opts.config, config);
  await rm(opts.from, { force: true });
  return config;
}
