// A real nginx in front of server nodes, with the configuration docs/operations.md documents (read
// from the docs, so what is documented is what is tested): its own prefix in a temporary folder,
// `daemon off;`, a random loopback port, the error log in that folder. Stopped by its own PID.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO, freePort, startChildProcess, waitFor } from './processes.js';
import type { Child } from './processes.js';

export interface Nginx {
  url: string;
  /** What nginx wrote to its error log so far. */
  errorLog(): string;
  stop(): Promise<void>;
}

/** The `nginx` block of docs/operations.md: the configuration an operator copies. */
export function documentedNginxConfig(): string {
  const doc = readFileSync(path.join(REPO, 'docs/operations.md'), 'utf8');
  const m = /```nginx\n([\s\S]*?)```/.exec(doc);
  if (m === null) throw new Error('docs/operations.md has no nginx block');
  return m[1]!;
}

/** The documented block with these upstream nodes (`host:port`) and this listen address, in a whole nginx.conf of its own. */
export function nginxConf(dir: string, upstreams: readonly string[], port: number): string {
  const block = documentedNginxConfig();
  const servers = /( *)server \S+:7410( [^;]*)?;\n/g;
  const first = servers.exec(block);
  if (first === null || !/\n\s*listen 7410;/.test(block)) throw new Error('the documented nginx block lost its upstream servers or its listen line');
  const indent = first[1]!;
  const params = first[2] ?? '';
  const site = block
    .replace(/( *server \S+:7410[^;]*;\n)+/, upstreams.map((u) => `${indent}server ${u}${params};\n`).join(''))
    .replace(/listen 7410;/, `listen 127.0.0.1:${port};`);
  const temp = (name: string): string => `${name}_temp_path ${path.join(dir, name)};`;
  return `daemon off;
worker_processes 1;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'error.log')} info;
events { worker_connections 1024; }
http {
  access_log ${path.join(dir, 'access.log')};
  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp).join('\n  ')}
${site}
}
`;
}

/** Starts nginx balancing over `upstreams` (`127.0.0.1:PORT` each); resolves once it answers. */
export async function startNginx(upstreams: readonly string[]): Promise<Nginx> {
  const dir = mkdtempSync(path.join(tmpdir(), 'quicksand-nginx-'));
  // Its workers run as nobody: they must reach the temp folders.
  chmodSync(dir, 0o755);
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(conf, nginxConf(dir, upstreams, port));
  const child: Child = startChildProcess('nginx', ['-e', path.join(dir, 'error.log'), '-p', dir, '-c', conf]);
  const errorLog = (): string => {
    try {
      return readFileSync(path.join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    'nginx to listen',
    async () => {
      if (child.proc.exitCode !== null) throw new Error(`nginx exited: ${child.output()}\n${errorLog()}`);
      return fetch(`${url}/healthz`).then(
        () => true,
        () => false,
      );
    },
    15_000,
    50,
  );
  return {
    url,
    errorLog,
    async stop() {
      await child.kill('SIGQUIT');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
