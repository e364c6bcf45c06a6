import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const AGENT_BIN = fileURLToPath(new URL('../../dist/agent/main.js', import.meta.url));

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built agent exactly as a user would (`npm test` builds dist/ first). `asUser` runs it
 * unprivileged through setpriv, for what root cannot see: permission errors.
 */
export function runAgent(args: string[], opts: { asUser?: number; timeoutMs?: number } = {}): RunResult {
  const [cmd, argv] =
    opts.asUser === undefined
      ? [process.execPath, [AGENT_BIN, ...args]]
      : ['setpriv', [`--reuid=${opts.asUser}`, `--regid=${opts.asUser}`, '--clear-groups', process.execPath, AGENT_BIN, ...args]];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000, maxBuffer: 256 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A user's mistake must never print a stack trace. */
export function hasStackTrace(text: string): boolean {
  return /^\s+at .+\(.+:\d+:\d+\)$/m.test(text) || text.includes('internal error');
}
