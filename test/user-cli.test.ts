// `quicksand-server user …` and `token create --user` on a real database file, through the
// command line's own dispatch; the passwords really are scrypt at the stored cost.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runServerCli } from '../server/cli.js';
import { verifyPassword } from '../server/passwords.js';
import { createSqliteStore } from '../server/store/sqlite-store.js';

let dir: string;
let db: string;
beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'quicksand-user-cli-'));
  db = path.join(dir, 'server.db');
  await createSqliteStore(db).close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function cli(args: string[], stdin?: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runServerCli([...args, '--db', db], {
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
    stopSignal: new Promise(() => {}),
    ...(stdin === undefined ? {} : { readStdin: async () => stdin }),
  });
  return { code, out, err };
}

describe('quicksand-server user', () => {
  it('adds a user with a generated password printed once, and keeps only its scrypt hash', async () => {
    const r = await cli(['user', 'add', 'jane', '--role', 'analyst']);
    expect(r.code).toBe(0);
    const password = /password \(shown once\): (\S+)/.exec(r.out)![1]!;
    const store = createSqliteStore(db);
    const user = (await store.userForLogin('jane'))!;
    await store.close();
    expect(user.passwordHash).toMatch(/^scrypt\$131072\$8\$1\$/);
    expect(user.passwordHash).not.toContain(password);
    expect(await verifyPassword(password, user.passwordHash)).toBe(true);
    expect(await verifyPassword(`${password}x`, user.passwordHash)).toBe(false);
  }, 20_000);

  it('reads a password from stdin, refuses a short one, a taken name and a bad one', async () => {
    expect((await cli(['user', 'add', 'sam', '--role', 'auditor', '--password-stdin'], 'correct horse battery\n')).out).toBe('added auditor sam\n');
    expect((await cli(['user', 'add', 'tim', '--role', 'auditor', '--password-stdin'], 'short\n')).err).toMatch(/at least 12 characters/);
    expect((await cli(['user', 'add', 'sam', '--role', 'admin'])).err).toMatch(/user sam exists/);
    expect((await cli(['user', 'add', 'Bad Name', '--role', 'admin'])).err).toMatch(/expected a user name/);
    expect((await cli(['user', 'add', 'zed', '--role', 'root'])).err).toMatch(/--role must be one of admin, analyst, auditor/);
  }, 20_000);

  it("lists users, disables one (their token stops) and gives a user's token the user's role and name", async () => {
    const token = (await cli(['token', 'create', '--user', 'sam', '--name', 'ci'])).out.trim();
    expect((await cli(['token', 'create', '--user', 'nobody'])).err).toMatch(/user nobody is not known/);
    const store = () => createSqliteStore(db);
    let s = store();
    expect(await s.authenticateApiToken(token)).toMatchObject({ role: 'auditor', name: 'sam (ci)', user: 'sam' });
    await s.close();
    expect((await cli(['user', 'disable', 'sam'])).out).toBe('disabled sam\n');
    expect((await cli(['user', 'list'])).out).toMatch(/^jane +analyst .*\nsam +auditor .* disabled \S+\n$/);
    s = store();
    expect(await s.authenticateApiToken(token)).toBeNull();
    const audit = (await s.triage.listAudit({ limit: 100 })).entries.map((e) => `${e.action} ${e.target}`);
    await s.close();
    expect(audit).toEqual(expect.arrayContaining(['user-add user:jane', 'user-add user:sam', 'user-disable user:sam']));
    expect((await cli(['user', 'passwd', 'jane'])).out).toMatch(/^new password of jane \(shown once\): \S{22}\n$/);
    expect((await cli(['user', 'role', 'jane', '--role', 'admin'])).out).toBe('jane is now admin\n');
    expect((await cli(['user', 'role', 'jane', '--role', 'admin'])).err).toMatch(/user jane is already admin/);
    expect((await cli(['user', 'role', 'jane'])).err).toMatch(/--role must be one of admin, analyst, auditor/);
    expect((await cli(['user', 'list'])).out).toMatch(/^jane +admin /);
  }, 30_000);
});
