// A throwaway PostgreSQL cluster for one test run: Debian's server binaries, `initdb` into a
// temporary folder, the server on a private socket folder and a free loopback port. One cluster
// for the whole run (vitest global setup); each test takes a fresh database copied from a
// migrated template, which is fast. The server refuses to run as root: it runs as the `postgres`
// user through setpriv, with a parent-death signal, so it stops even when the run is killed.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';

export interface Cluster {
  /** Socket folder and port: `postgres://postgres@localhost:PORT/DB?host=SOCKETDIR` reaches it. */
  socketDir: string;
  port: number;
  url(database: string): string;
  /** Stops the server (fast shutdown), keeps it down for `downMs`, starts it again on the same folder and port. */
  restart(downMs: number): Promise<void>;
  stop(): Promise<void>;
}

const SERVER_USER = 'postgres';

/** The newest server version Debian's `postgresql` package installed. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'postgres'))) : [];
  if (versions.length === 0) throw new Error(`no PostgreSQL server under ${root}: install Debian's postgresql package (apt-get install postgresql)`);
  return path.join(root, versions.sort((a, b) => Number(b) - Number(a))[0]!, 'bin');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** The command line that runs `argv` as the server user (root cannot run the server). */
function asServerUser(argv: string[]): [string, string[]] {
  if (userInfo().uid !== 0) return [argv[0]!, argv.slice(1)];
  return ['setpriv', ['--reuid', SERVER_USER, '--regid', SERVER_USER, '--init-groups', '--pdeathsig', 'TERM', '--', ...argv]];
}

function runAsServerUser(argv: string[]): void {
  const [cmd, args] = asServerUser(argv);
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

async function waitReady(bin: string, socketDir: string, port: number, server: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`postgres exited with code ${server.exitCode}: ${log()}`);
    try {
      execFileSync(path.join(bin, 'pg_isready'), ['-q', '-h', socketDir, '-p', String(port)], { stdio: 'ignore' });
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`postgres did not accept connections within 30 s: ${log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * Creates and starts a cluster. Durability is off (fsync): it is thrown away after the run, and
 * the tests measure behaviour, not speed.
 */
export async function startCluster(opts: { durable?: boolean } = {}): Promise<Cluster> {
  const bin = postgresBinDir();
  const dir = mkdtempSync(path.join(tmpdir(), 'quicksand-pg-'));
  const data = path.join(dir, 'data');
  const socketDir = path.join(dir, 'sock');
  execFileSync('mkdir', [data, socketDir]);
  if (userInfo().uid === 0) {
    const uid = Number(execFileSync('id', ['-u', SERVER_USER]).toString());
    const gid = Number(execFileSync('id', ['-g', SERVER_USER]).toString());
    for (const d of [dir, data, socketDir]) chownSync(d, uid, gid);
  }
  chmodSync(dir, 0o755);
  runAsServerUser([path.join(bin, 'initdb'), '-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync']);
  const port = await freePort();
  const settings = ['-c', `listen_addresses=127.0.0.1`, '-c', `unix_socket_directories=${socketDir}`, '-c', 'max_connections=300', '-c', 'shared_buffers=128MB'];
  if (opts.durable !== true) settings.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  const [cmd, args] = asServerUser([path.join(bin, 'postgres'), '-D', data, '-p', String(port), ...settings]);
  let stderr = '';
  /** The server process on the cluster's folder (again after a restart), ready when it resolves. */
  const launch = async (): Promise<{ server: ChildProcess; stopped: Promise<void> }> => {
    const server = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    server.stderr!.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4000);
    });
    const stopped = new Promise<void>((resolve) => server.once('exit', () => resolve()));
    try {
      await waitReady(bin, socketDir, port, server, () => stderr);
    } catch (err) {
      server.kill('SIGKILL');
      await stopped;
      throw err;
    }
    return { server, stopped };
  };
  const halt = async (): Promise<void> => {
    // SIGINT: the server's fast shutdown (what `pg_ctl stop -m fast` sends).
    if (running.server.exitCode === null) running.server.kill('SIGINT');
    const killer = setTimeout(() => running.server.kill('SIGKILL'), 10_000);
    await running.stopped;
    clearTimeout(killer);
  };
  let running: Awaited<ReturnType<typeof launch>>;
  try {
    running = await launch();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    socketDir,
    port,
    url: (database) => `postgres://postgres@localhost:${port}/${database}?host=${encodeURIComponent(socketDir)}`,
    async restart(downMs) {
      await halt();
      await new Promise((r) => setTimeout(r, downMs));
      running = await launch();
    },
    async stop() {
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
