import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { QuicksandError } from '../../shared/errors.js';
import { agentConfigSchema } from '../../shared/protocol.js';
import type { AgentConfig } from '../../shared/protocol.js';
import { formatIssues } from '../../shared/schema-errors.js';

export const CONFIG_NAME = 'agent.json';
export const SYSTEM_CONFIG = '/etc/quicksand/agent.json';

/** Where the agent's identity lives: --config, else the state folder, else /etc/quicksand. */
export function resolveConfigFile(state: string, explicit: string | undefined): string {
  if (explicit !== undefined) return path.resolve(explicit);
  const inState = path.join(state, CONFIG_NAME);
  if (existsSync(inState) || !existsSync(SYSTEM_CONFIG)) return inState;
  return SYSTEM_CONFIG;
}

export async function readAgentConfig(file: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new QuicksandError('AGENT_NOT_ENROLLED', `${file} does not exist: enrol this host first with \`quicksand-agent enroll --server URL --secret S\``);
    }
    throw new QuicksandError('CONFIG_INVALID', `cannot read ${file}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new QuicksandError('CONFIG_INVALID', `${file} is not valid JSON`);
  }
  const result = agentConfigSchema.safeParse(value);
  if (!result.success) throw new QuicksandError('CONFIG_INVALID', `${file} is not a valid agent configuration:\n${formatIssues(result.error)}`);
  return result.data;
}

/** Written 0600 and atomically: it holds the agent's token. */
export async function writeAgentConfig(file: string, config: AgentConfig): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFile(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, file);
  } catch (err) {
    throw new QuicksandError('OUTPUT_UNWRITABLE', `cannot write ${file}: ${(err as Error).message}`);
  }
}
