// install.sh --root into a real Debian root is an image: it must carry no identity. Two copies of
// it are then booted as two machines (own root, hostname and machine-id; the same kernel): the
// first-boot unit's own command lines enrol each one as itself, and an agent.json copied from one
// to the other makes the server raise identity-cloned.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { HostDetail } from '../shared/api.js';
import { agentConfigSchema } from '../shared/protocol.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { copyTree, ensureMinbase } from './helpers/debian-root.js';
import { REPO, waitFor } from './helpers/processes.js';

const MACHINE_A = 'a1'.repeat(16);
const MACHINE_B = 'b2'.repeat(16);

interface Run { code: number; out: string }

function collect(child: ChildProcess): Promise<Run> {
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, out })));
}

/** Async on purpose: the server answering runs in this very process. */
function install(root: string, args: string[]): Promise<Run> {
  return collect(spawn('bash', [path.join(REPO, 'install.sh'), '--root', root, ...args], { timeout: 120_000 }));
}

/**
 * Runs one command line inside `root` as a machine of its own: a mount and UTS namespace with
 * its hostname, /proc, and this Node.js bound in as /usr/local/bin/node (the image has none).
 * The command's pid is printed first, so it can be stopped by its pid (the namespace's shell
 * waits for it; unshare does not pass SIGTERM on).
 */
function onMachine(root: string, hostname: string, argv: string[], user?: string): { pid: Promise<number>; done: Promise<Run> } {
  const script = [
    'set -e',
    'touch "$R/usr/local/bin/node"',
    'mount --bind "$NODE" "$R/usr/local/bin/node"',
    'mount -t proc proc "$R/proc"',
    'hostname "$H"',
    `chroot ${user === undefined ? '' : `--userspec=${user}:${user}`} "$R" "$@" &`,
    'echo "pid $!"',
    'wait $! && exit 0 || exit $?',
  ].join('\n');
  const child = spawn('unshare', ['--mount', '--uts', '--fork', '--', 'sh', '-c', script, 'sh', ...argv], {
    env: { R: root, H: hostname, NODE: process.execPath, PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' },
  });
  const pid = new Promise<number>((resolve, reject) => {
    let head = '';
    const onData = (d: Buffer): void => {
      head += d.toString();
      const m = /^pid (\d+)\n/.exec(head);
      if (m !== null) {
        child.stdout.off('data', onData);
        resolve(Number(m[1]));
      }
    };
    child.stdout.on('data', onData);
    child.on('close', () => reject(new Error(`no pid from ${argv.join(' ')}: ${head}`)));
  });
  pid.catch(() => {});
  return { pid, done: collect(child) };
}

/** The unit's command lines (ExecStart=, ExecStartPost=, in order), split as systemd does for these plain ones. */
function unitCommands(root: string, unit: string): string[][] {
  const text = readFileSync(path.join(root, 'etc/systemd/system', unit), 'utf8');
  return [...text.matchAll(/^(ExecStart|ExecStartPost)=(.+)$/gm)].map((m) => m[2]!.trim().split(/\s+/));
}

/** What systemd does on a machine's first boot for the enrol unit: its conditions, then its commands. */
async function firstBoot(root: string, hostname: string, machineId: string): Promise<Run[]> {
  // systemd gives a machine made from an image (empty machine-id) its own on first boot.
  writeFileSync(path.join(root, 'etc/machine-id'), `${machineId}\n`);
  const unit = readFileSync(path.join(root, 'etc/systemd/system/quicksand-enroll.service'), 'utf8');
  for (const [, negate, p] of unit.matchAll(/^ConditionPathExists=(!?)(\S+)$/gm)) {
    if (existsSync(path.join(root, p!)) === (negate === '!')) return [];
  }
  const runs: Run[] = [];
  for (const argv of unitCommands(root, 'quicksand-enroll.service')) {
    const run = await onMachine(root, hostname, argv).done;
    runs.push(run);
    if (run.code !== 0) break;
  }
  return runs;
}

describe('install.sh --root: an image enrols each machine made from it on first boot', () => {
  let image: { dir: string; remove: () => void };
  const machines: Array<{ dir: string; remove: () => void }> = [];
  let server: RunningServer;
  let secret: string;
  const running: number[] = [];

  beforeAll(async () => {
    // dist/ is built once by test/global-setup.ts.
    image = copyTree(ensureMinbase());
    server = await startServer({ db: path.join(path.dirname(image.dir), 'server.db'), port: 0, host: '127.0.0.1' });
    secret = await server.store.createEnrollSecret(new Date());
  }, 300_000);
  afterEach(() => {
    for (const pid of running.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already ended
      }
    }
  });
  afterAll(async () => {
    await server?.close();
    for (const m of machines) m.remove();
    image?.remove();
  });

  /** Starts the agent the way its unit does (as the service user) and waits for its hello. */
  async function startAgent(root: string, hostname: string, seen: () => Promise<boolean>): Promise<void> {
    const [argv] = unitCommands(root, 'quicksand-agent.service');
    const agent = onMachine(root, hostname, argv!, 'quicksand');
    const pid = await agent.pid;
    running.push(pid);
    await Promise.race([
      waitFor(`the agent on ${hostname} to say hello`, () => seen(), 90_000),
      agent.done.then((r) => Promise.reject(new Error(`the agent on ${hostname} ended (${r.code}): ${r.out}`))),
    ]);
    process.kill(pid, 'SIGTERM');
    const stopped = await agent.done;
    expect(stopped.out).toContain('stopping');
  }

  it('installs no identity, enrols two machines as two agents, and a copied agent.json raises identity-cloned', async () => {
    const installed = await install(image.dir, ['--server', server.url, '--secret', secret, '--init', 'systemd']);
    expect(installed.code, installed.out).toBe(0);
    // Nothing enrolled at build time: no identity in the image, no host on the server.
    expect(installed.out).not.toContain('enrolled with');
    expect(existsSync(path.join(image.dir, 'etc/quicksand/agent.json'))).toBe(false);
    expect(await server.store.listHosts({}, new Date())).toEqual([]);
    const enrollFile = path.join(image.dir, 'etc/quicksand/enroll.json');
    expect(statSync(enrollFile).mode & 0o777).toBe(0o600);
    expect(statSync(enrollFile).uid).toBe(0);
    expect(readlinkSync(path.join(image.dir, 'etc/systemd/system/multi-user.target.wants/quicksand-enroll.service'))).toBe('/etc/systemd/system/quicksand-enroll.service');
    // A second run changes nothing and still enrols nothing.
    const again = await install(image.dir, ['--server', server.url, '--secret', secret, '--init', 'systemd']);
    expect(again.code, again.out).toBe(0);
    expect(again.out).toContain('unchanged /etc/quicksand/enroll.json');
    expect(await server.store.listHosts({}, new Date())).toEqual([]);

    // Two machines made from the image, with one hostname (as clones often have).
    const a = copyTree(image.dir);
    const b = copyTree(image.dir);
    machines.push(a, b);
    for (const [m, id] of [[a, MACHINE_A], [b, MACHINE_B]] as const) {
      const runs = await firstBoot(m.dir, 'web-1', id);
      expect(runs.map((r) => r.code), runs.map((r) => r.out).join('\n')).toEqual([0, 0]);
      // The secret is gone from the running machine; its identity is the service user's alone.
      expect(existsSync(path.join(m.dir, 'etc/quicksand/enroll.json'))).toBe(false);
      const config = path.join(m.dir, 'etc/quicksand/agent.json');
      expect(statSync(config).mode & 0o777).toBe(0o600);
      expect(statSync(config).uid).toBe(Number(readFileSync(path.join(m.dir, 'etc/passwd'), 'utf8').match(/^quicksand:x:(\d+):/m)![1]));
      // A second boot does not enrol again: the unit's condition holds it.
      expect(await firstBoot(m.dir, 'web-1', id)).toEqual([]);
    }
    const idA = agentConfigSchema.parse(JSON.parse(readFileSync(path.join(a.dir, 'etc/quicksand/agent.json'), 'utf8'))).agentId;
    const idB = agentConfigSchema.parse(JSON.parse(readFileSync(path.join(b.dir, 'etc/quicksand/agent.json'), 'utf8'))).agentId;
    expect(idA).not.toBe(idB);
    const hosts = await server.store.listHosts({}, new Date());
    expect(hosts.map((h) => [h.id, h.hostname, h.machineId, h.status]).sort()).toEqual(
      [[idA, 'web-1', MACHINE_A, 'enrolled'], [idB, 'web-1', MACHINE_B, 'enrolled']].sort(),
    );
    // Same hostname, told apart.
    expect(new Set(hosts.map((h) => h.displayName)).size).toBe(2);

    // Each machine's own agent says hello as itself: no finding.
    const host = async (id: string): Promise<Omit<HostDetail, 'connected'>> => (await server.store.getHost(id, new Date()))!;
    await startAgent(a.dir, 'web-1', async () => (await host(idA)).lastSeen !== null);
    expect(await server.store.listFindings(idA, { state: 'open' }, new Date())).toEqual([]);

    // Machine B is given machine A's identity.
    copyFileSync(path.join(a.dir, 'etc/quicksand/agent.json'), path.join(b.dir, 'etc/quicksand/agent.json'));
    const cloned = async () => (await server.store.listFindings(idA, { state: 'open' }, new Date()))!.filter((f) => f.kind === 'identity-cloned');
    await startAgent(b.dir, 'web-1', async () => (await cloned()).length > 0);
    expect(await cloned()).toEqual([
      expect.objectContaining({ source: 'server', severity: 'critical', detail: expect.objectContaining({ machineId: MACHINE_B, hostname: 'web-1' }) }),
    ]);
    expect(((await cloned())[0]!.detail as { reason: string }).reason).toContain(MACHINE_A);
    expect((await host(idA)).status).toBe('pet');
    // The second machine did not take over the host's record.
    expect((await host(idA)).machineId).toBe(MACHINE_A);
  }, 240_000);
});
