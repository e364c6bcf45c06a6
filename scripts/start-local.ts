// `npm start`: the whole loop on this machine. Starts the server (database in .quicksand/), enrols
// a local agent the first time, runs it against / and streams its reports, and prints the URL
// and an API token to look at the result. Ctrl-C stops both.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DATA = path.join(REPO, '.quicksand');
const DB = path.join(DATA, 'server.db');
const AGENT_STATE = path.join(DATA, 'agent');
const TOKEN_FILE = path.join(DATA, 'api-token');
const PORT = process.env.QUICKSAND_PORT ?? '7410';
const SERVER = path.join(REPO, 'dist/server/main.js');
const AGENT = path.join(REPO, 'dist/agent/main.js');

function cli(bin: string, args: string[]): string {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(r.stderr);
    process.exit(2);
  }
  return r.stdout.trim();
}

function prefixed(child: ChildProcess, tag: string): void {
  for (const stream of [child.stdout!, child.stderr!]) {
    let buf = '';
    stream.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const line of lines) process.stderr.write(`${tag} ${line}\n`);
    });
  }
}

mkdirSync(DATA, { recursive: true, mode: 0o700 });
const server = spawn(process.execPath, [SERVER, 'start', '--db', DB, '--port', PORT], { stdio: ['ignore', 'pipe', 'pipe'] });
prefixed(server, '[server]');
let listening = false;
let stopping = false;
const url = await new Promise<string>((resolve) => {
  server.stdout!.on('data', (d: Buffer) => {
    const m = /listening on (\S+)/.exec(d.toString());
    if (m) {
      listening = true;
      resolve(m[1]!);
    }
  });
  server.on('exit', (code) => {
    // Ctrl-C stops the server too: only an exit nobody asked for is news.
    if (stopping) process.exit(0);
    if (listening) process.stderr.write(`the server stopped (exit ${code})\n`);
    else process.stderr.write(`the server stopped (exit ${code}) before it listened; is port ${PORT} taken? Set QUICKSAND_PORT to use another.\n`);
    process.exit(2);
  });
});

if (!existsSync(path.join(AGENT_STATE, 'agent.json'))) {
  const secret = cli(SERVER, ['enroll-secret', '--db', DB]);
  process.stderr.write(`${cli(AGENT, ['enroll', '--server', url, '--secret', secret, '--state', AGENT_STATE])}\n`);
}
if (!existsSync(TOKEN_FILE)) writeFileSync(TOKEN_FILE, `${cli(SERVER, ['token', 'create', '--role', 'admin', '--db', DB])}\n`, { mode: 0o600 });
const token = readFileSync(TOKEN_FILE, 'utf8').trim();
// The console's first user: its password is printed this once (only a hash is kept).
const users = cli(SERVER, ['user', 'list', '--db', DB]);
const adminPassword = /^admin\s/m.test(users) ? null : /password \(shown once\): (\S+)/.exec(cli(SERVER, ['user', 'add', 'admin', '--role', 'admin', '--db', DB]))![1]!;

// The local agent: scans / (the first run records it as the baseline) every 5 minutes.
const agent = spawn(process.execPath, [AGENT, 'run', '--root', '/', '--state', AGENT_STATE, '--schedule', '*/5 * * * *'], { stdio: ['ignore', 'pipe', 'pipe'] });
prefixed(agent, '[agent]');

process.stdout.write(`
Quicksand is running at ${url}
  console: ${url}/  user admin, ${adminPassword === null ? 'password as printed at the first start (quicksand-server user passwd admin --db .quicksand/server.db sets a new one)' : `one-time password ${adminPassword}`}
  a local agent is enrolled and streaming (state in .quicksand/agent/); the first scan takes a baseline
  API token (admin): ${token}   (also in .quicksand/api-token)

  curl -H "Authorization: Bearer $(cat .quicksand/api-token)" ${url}/api/v1/hosts
  curl -H "Authorization: Bearer $(cat .quicksand/api-token)" "${url}/api/v1/hosts?status=pet"
  curl ${url}/metrics

Ctrl-C stops the server and the agent.
`);

const stop = (): void => {
  if (stopping) return;
  stopping = true;
  agent.kill('SIGTERM');
  server.kill('SIGTERM');
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
agent.on('exit', (code) => {
  if (!stopping) process.stderr.write(`the agent stopped (exit ${code})\n`);
  stop();
});
