// Commands check what they need before the work: an agent that is not enrolled is told so before
// a scan or a first baseline, a --state that is a file is named as one, an unknown option is
// answered in our words, and the server's CLI never creates an empty database by accident.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultDatabase } from '../server/commands/common.js';
import { runCli } from './helpers/processes.js';

let dir: string;
let root: string;
let manifest: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'quicksand-prechecks-'));
  root = path.join(dir, 'root');
  mkdirSync(path.join(root, 'etc'), { recursive: true });
  writeFileSync(path.join(root, 'etc/app.conf'), 'a=1\n');
  manifest = path.join(dir, 'm.json');
  const r = runCli('agent', ['manifest', '--root', root, '--out', manifest, '--name', 'tiny', '--image-version', '1', '--state', path.join(dir, 'm-state')]);
  expect(r.code, r.stderr).toBe(0);
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('agent commands on a host that is not enrolled', () => {
  it('scan --send fails before scanning', () => {
    const state = path.join(dir, 'send-state');
    const r = runCli('agent', ['scan', '--root', root, '--manifest', manifest, '--send', '--state', state]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/agent\.json does not exist: enrol this host first/);
    // No report printed: the scan never ran.
    expect(r.stdout).toBe('');
  });

  it('run fails before recording a first baseline', () => {
    const state = path.join(dir, 'run-state');
    const r = runCli('agent', ['run', '--root', root, '--state', state, '--no-watch']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/agent\.json does not exist: enrol this host first/);
    expect(r.stderr).not.toContain('recording what');
    expect(existsSync(state) ? readdirSync(state) : []).toEqual([]);
  });
});

describe('--state naming a file', () => {
  it.each([
    ['scan', ['scan', '--root', 'ROOT', '--manifest', 'MANIFEST']],
    ['manifest', ['manifest', '--root', 'ROOT', '--out', 'OUT']],
    ['run', ['run', '--root', 'ROOT']],
  ])('%s says the state folder is a file', (_name, args) => {
    const file = path.join(dir, 'not-a-folder');
    writeFileSync(file, 'x');
    const argv = args.map((a) => (a === 'ROOT' ? root : a === 'MANIFEST' ? manifest : a === 'OUT' ? path.join(dir, 'out.json') : a));
    const r = runCli('agent', [...argv, '--state', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`the state folder ${file} is a file, not a folder`);
    expect(r.stderr).not.toMatch(/EEXIST|run as root/);
  });
});

describe('options', () => {
  it('an unknown or misused option is answered in our words, with the nearest real one', () => {
    const unknown = runCli('agent', ['scan', '--manfest', manifest]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^quicksand-agent scan: unknown option --manfest \(did you mean --manifest\?\); options: .*--root.*\(see quicksand-agent scan --help\)\n$/);
    expect(unknown.stderr).not.toContain('positional argument');
    expect(runCli('agent', ['scan', '--root']).stderr).toBe('quicksand-agent scan: --root needs a value (see quicksand-agent scan --help)\n');
    expect(runCli('agent', ['scan', '--json=yes']).stderr).toBe('quicksand-agent scan: --json takes no value (see quicksand-agent scan --help)\n');
    expect(runCli('server', ['token', 'create', '--rol', 'admin']).stderr).toMatch(/unknown option --rol \(did you mean --role\?\)/);
  });
});

describe('the server database', () => {
  it('token create and enroll-secret refuse a --db that does not exist instead of creating an empty one', () => {
    const db = path.join(dir, 'nowhere', 'server.db');
    for (const args of [['token', 'create', '--role', 'admin'], ['enroll-secret'], ['agent', 'revoke', 'abc']]) {
      const r = runCli('server', [...args, '--db', db]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(`${db} does not exist`);
      expect(r.stdout).toBe('');
    }
    expect(existsSync(path.dirname(db))).toBe(false);
  });

  it('defaults to a fixed data folder, not the current one', () => {
    expect(defaultDatabase({}, 0, '/root')).toBe('/var/lib/quicksand-server/server.db');
    expect(defaultDatabase({}, 1000, '/home/jane')).toBe('/home/jane/.local/share/quicksand-server/server.db');
    expect(defaultDatabase({ XDG_DATA_HOME: '/data/jane' }, 1000, '/home/jane')).toBe('/data/jane/quicksand-server/server.db');
    expect(runCli('server', ['start', '--help']).stdout).toContain(`else ${defaultDatabase()}`);
  });
});
