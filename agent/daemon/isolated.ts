import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface IsolatedResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs one agent command (a scan, say) in a child process of its own. A long-running agent that
 * scans now and then keeps only its small idle footprint between scans, instead of the
 * high-water mark of the largest scan it ever ran: a worker thread was tried, but the memory
 * its heap and allocator arenas took stays with the process after it ends.
 */
export function runIsolated(argv: string[], opts: { env?: NodeJS.ProcessEnv; entry?: string } = {}): Promise<IsolatedResult> {
  const self = import.meta.url;
  const ts = self.endsWith('.ts');
  // `entry`: another script than the agent's CLI, as a path from this folder without extension.
  const main = fileURLToPath(new URL(`${opts.entry ?? '../main'}${ts ? '.ts' : '.js'}`, self));
  // Sources run through tsx (tests, dev); the built agent needs no loader.
  const child = spawn(process.execPath, [...(ts ? ['--import', 'tsx'] : []), main, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code: code ?? (signal ? 2 : 0), stdout, stderr }));
  });
}
