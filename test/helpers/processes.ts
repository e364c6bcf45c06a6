// Real quicksand-server / quicksand-agent processes for the wire tests, run from the TypeScript
// sources with tsx so the tests need no build step. Every child is killed by its own PID.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TSX = ['--import', 'tsx'];

export interface Child {
  proc: ChildProcess;
  output: () => string;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): Promise<number | string>;
}

const children = new Set<ChildProcess>();

/** Kills every child a test left running (by PID): call from afterEach/afterAll. */
export function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
}

export function startChild(entry: 'agent' | 'server', args: string[]): Child {
  return startChildProcess(process.execPath, [...TSX, path.join(REPO, entry, 'main.ts'), ...args]);
}

/** Any program as a child of the test (nginx, …), its output kept, killed by its PID. */
export function startChildProcess(command: string, args: string[]): Child {
  const proc = spawn(command, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let out = '';
  proc.on('error', (err) => (out += `cannot run ${command}: ${err.message}\n`));
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    proc,
    output: () => out,
    exited,
    kill(signal = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

export function runCli(entry: 'agent' | 'server', args: string[], timeoutMs = 60_000): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...TSX, path.join(REPO, entry, 'main.ts'), ...args], { cwd: REPO, encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** `runCli` without blocking this process: for a CLI that talks to a server running in the test. */
export async function runCliAsync(entry: 'agent' | 'server', args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [...TSX, path.join(REPO, entry, 'main.ts'), ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
  children.delete(child);
  return { code, stdout, stderr };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A server child on a fixed port (so a restart is found at the same URL by the agents). */
export async function startServerChild(db: string, port: number, extraArgs: string[] = []): Promise<Child & { url: string }> {
  const child = startChild('server', ['start', '--db', db, '--port', String(port), '--host', '127.0.0.1', ...extraArgs]);
  await waitFor('the server to listen', () => child.output().includes('listening on') || (child.proc.exitCode !== null ? Promise.reject(new Error(`server exited: ${child.output()}`)) : false), 30_000, 50);
  return { ...child, url: `http://127.0.0.1:${port}` };
}

export async function apiGet<T>(url: string, token: string): Promise<T> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}
