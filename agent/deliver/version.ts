// Sent in hello so the server can tell agent versions apart; bump with package.json.
import { hostname, release } from 'node:os';
import type { HelloFrame } from '../../shared/protocol.js';
import { readMachineFacts } from './machine.js';

export const AGENT_VERSION = '0.1.0';

/** What the agent says about its host in hello: the server tells two machines on one identity apart by machine-id and boot id. */
export async function hostFacts(): Promise<HelloFrame['host']> {
  return { hostname: hostname(), os: `${process.platform} ${release()}`, agentVersion: AGENT_VERSION, ...(await readMachineFacts()) };
}
