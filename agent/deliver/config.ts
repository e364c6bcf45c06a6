import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import { QuicksandError } from '../../shared/errors.js';
import { agentConfigSchema } from '../../shared/protocol.js';
import type { AgentConfig } from '../../shared/protocol.js';
import { formatIssues } from '../../shared/schema-errors.js';

export const CONFIG_NAME = 'agent.json';
export const SYSTEM_CONFIG = '/etc/quicksand/agent.json';
/** Bounded: a real configuration file is a few short strings. */
const MAX_CONFIG_BYTES = 64 * 1024;

/** Where the agent's identity lives: --config, else the state folder, else /etc/quicksand. */
export function resolveConfigFile(state: string, explicit: string | undefined): string {
  if (explicit !== undefined) return path.resolve(explicit);
  const inState = path.join(state, CONFIG_NAME);
  if (existsSync(inState) || !existsSync(SYSTEM_CONFIG)) return inState;
  return SYSTEM_CONFIG;
}

export async function readAgentConfig(file: string): Promise<AgentConfig> {
  return readConfigFile(file, agentConfigSchema, 'agent configuration', () => new QuicksandError('AGENT_NOT_ENROLLED', `${file} does not exist: enrol this host first with \`quicksand-agent enroll --server URL --secret S\``));
}

/** A small JSON file of the agent's, parsed by `schema`; `missing` is the error when it does not exist. */
export async function readConfigFile<T>(file: string, schema: z.ZodType<T>, what: string, missing: () => QuicksandError): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missing();
    throw new QuicksandError('CONFIG_INVALID', `cannot read ${file}: ${(err as Error).message}`);
  }
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES) throw new QuicksandError('CONFIG_INVALID', `${file} is over ${MAX_CONFIG_BYTES} bytes: not a valid ${what}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new QuicksandError('CONFIG_INVALID', `${file} is not valid JSON`);
  }
  const result = schema.safeParse(value);
  if (!result.success) throw new QuicksandError('CONFIG_INVALID', `${file} is not a valid ${what}:\n${formatIssues(result.error)}`);
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
