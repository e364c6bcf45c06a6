// Sent in hello so the server can tell agent versions apart; bump with package.json.
import { hostname, release } from 'node:os';

export const AGENT_VERSION = '0.1.0';

/** What the agent says about its host in hello. */
export function hostFacts(): { hostname: string; os: string; agentVersion: string } {
  return { hostname: hostname(), os: `${process.platform} ${release()}`, agentVersion: AGENT_VERSION };
}
