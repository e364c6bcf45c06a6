// install.sh against a real Debian root (debootstrap minbase): installed twice it leaves one
// correct installation, and --uninstall leaves the root as it was.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { copyTree, ensureMinbase } from './helpers/debian-root.js';
import { REPO } from './helpers/processes.js';
import { diffSnapshots, snapshot } from './helpers/tree-snapshot.js';

// useradd/userdel rewrite the account files (new mtime) and keep a backup of each (/etc/passwd-
// ...): the backups belong to those tools; the account files themselves are compared by content.
const ACCOUNT_FILES = new Set(['/etc/passwd', '/etc/group', '/etc/shadow', '/etc/gshadow', '/etc/passwd-', '/etc/group-', '/etc/shadow-', '/etc/gshadow-']);

/** Async on purpose: the server answering the enrolment runs in this very process. */
function install(root: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [path.join(REPO, 'install.sh'), '--root', root, ...args], { timeout: 120_000 });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

describe('install.sh', () => {
  let tree: { dir: string; remove: () => void };
  let server: RunningServer;
  let secret: string;

  beforeAll(async () => {
    // dist/ is built once by test/global-setup.ts.
    tree = copyTree(ensureMinbase());
    server = await startServer({ db: path.join(path.dirname(tree.dir), 'server.db'), port: 0, host: '127.0.0.1' });
    secret = await server.store.createEnrollSecret(new Date());
  }, 300_000);
  afterAll(async () => {
    await server?.close();
    tree?.remove();
  });

  it('installs once, changes nothing the second time, and --uninstall leaves nothing', async () => {
    const root = tree.dir;
    const before = snapshot(root);

    const first = await install(root, ['--server', server.url, '--secret', secret, '--init', 'systemd']);
    expect(first.code, first.out).toBe(0);
    // An image root is not enrolled (see first-boot.test.ts): it carries where to enrol.
    expect(first.out).not.toContain('enrolled with');
    expect(first.out).toContain('enrol with');

    // One service user, owning its state folder and its identity (0600).
    const passwd = readFileSync(path.join(root, 'etc/passwd'), 'utf8').split('\n').filter((l) => l.startsWith('quicksand:'));
    expect(passwd).toHaveLength(1);
    const uid = Number(passwd[0]!.split(':')[2]);
    const enrollFile = path.join(root, 'etc/quicksand/enroll.json');
    expect(statSync(enrollFile).mode & 0o777).toBe(0o600);
    expect(statSync(enrollFile).uid).toBe(0);
    expect(statSync(path.join(root, 'var/lib/quicksand')).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(root, 'var/lib/quicksand')).uid).toBe(uid);
    expect(await server.store.listHosts({}, new Date())).toEqual([]);

    // A hardened unit, enabled the way systemctl would.
    const unit = readFileSync(path.join(root, 'etc/systemd/system/quicksand-agent.service'), 'utf8');
    expect(unit).toContain('User=quicksand');
    expect(unit).toContain('NoNewPrivileges=yes');
    expect(unit).toContain('ProtectSystem=strict');
    expect(unit).toContain('CapabilityBoundingSet=CAP_DAC_READ_SEARCH');
    expect(readlinkSync(path.join(root, 'etc/systemd/system/multi-user.target.wants/quicksand-agent.service'))).toBe('/etc/systemd/system/quicksand-agent.service');

    // The installed copy runs on its own (its node_modules are complete) and is not writable by the service user.
    const help = spawnSync(process.execPath, [path.join(root, 'opt/quicksand/dist/agent/main.js'), 'run', '--help'], { encoding: 'utf8', cwd: '/' });
    expect(help.status, help.stderr).toBe(0);
    expect(statSync(path.join(root, 'opt/quicksand/dist/agent/main.js')).uid).toBe(0);

    const installed = snapshot(root);
    const second = await install(root, ['--server', server.url, '--secret', secret, '--init', 'systemd']);
    expect(second.code, second.out).toBe(0);
    expect(second.out).toContain('unchanged /opt/quicksand');
    expect(second.out).toContain('unchanged /etc/quicksand/enroll.json');
    expect(second.out).toContain('unchanged /etc/systemd/system/quicksand-enroll.service');
    expect(diffSnapshots(installed, snapshot(root))).toEqual([]);
    expect(await server.store.listHosts({}, new Date())).toEqual([]);

    const removed = await install(root, ['--uninstall', '--init', 'systemd']);
    expect(removed.code, removed.out).toBe(0);
    // Folders whose entries came and went have a new mtime; everything else is as it was.
    const beforeNoDirTimes = snapshot(ensureMinbase(), { dirMtimes: false });
    expect(diffSnapshots(beforeNoDirTimes, snapshot(root, { dirMtimes: false }), (p) => ACCOUNT_FILES.has(p))).toEqual([]);
    expect(before.size).toBe(beforeNoDirTimes.size);
    for (const file of ['etc/passwd', 'etc/group', 'etc/shadow', 'etc/gshadow']) {
      expect(readFileSync(path.join(root, file), 'utf8'), file).toBe(readFileSync(path.join(ensureMinbase(), file), 'utf8'));
    }
  });

  it('without systemd says how to run the agent, and refuses to run without enrolment details', async () => {
    const root = tree.dir;
    const noEnrol = await install(root, ['--init', 'none']);
    expect(noEnrol.code).toBe(2);
    expect(noEnrol.out).toContain('pass --server URL and --secret S');
    const ok = await install(root, ['--server', server.url, '--secret', secret, '--init', 'none']);
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toMatch(/no systemd in [^\n]*first boot[^\n]*\n\s+\/opt\/quicksand\/bin\/quicksand-agent enroll --from \/etc\/quicksand\/enroll.json[^\n]*\n\s+\/opt\/quicksand\/bin\/quicksand-agent run/);
    expect((await install(root, ['--uninstall'])).code).toBe(0);
  });
});
