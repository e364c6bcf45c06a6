// The console's defences, each against its attack, through the real server routing (console and
// API on one fetch, a real SQLite file): brute force, cross-origin posts, other and expired
// sessions, fixation, and agent-supplied markup shown inert.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_COOKIE } from '../shared/console.js';
import { createApp } from '../server/api/app.js';
import { createMetrics } from '../server/metrics.js';
import { hashPassword } from '../server/passwords.js';
import { isApiPath } from '../server/server.js';
import type { Store } from '../server/store/types.js';
import { createConsole } from '../server/web/console.js';
import { HostPage } from '../server/web/host.js';
import { DEFAULT_SESSION_POLICY } from '../server/web/session.js';
import { STORE_BACKENDS, reportFrame } from './helpers/store-backends.js';
import type { FreshStore } from './helpers/store-backends.js';

const ORIGIN = 'http://console.test';
const PASSWORD = 'correct horse battery staple';
let now = new Date('2026-12-01T10:00:00Z');
let db: FreshStore;
let store: Store;
let fetchApp: (path: string, init?: RequestInit) => Promise<Response>;
let hostId: string;

beforeAll(async () => {
  db = await STORE_BACKENDS[0]!.fresh();
  store = db.store;
  const hash = await hashPassword(PASSWORD);
  for (const [name, role] of [['ana', 'analyst'], ['aud', 'auditor'], ['bob', 'analyst'], ['adm', 'admin']] as const) await store.createUser({ name, role, passwordHash: hash, now });
  const api = createApp({ store, clock: () => now, metrics: createMetrics() });
  const web = createConsole({ store, clock: () => now, policy: { ...DEFAULT_SESSION_POLICY, accountMax: 3 } });
  fetchApp = async (path, init) => {
    const req = new Request(`${ORIGIN}${path}`, { redirect: 'manual', ...init });
    return isApiPath(new URL(req.url).pathname) ? api.fetch(req) : web.fetch(req);
  };
  // An agent that says hostile things: its hostname, a package name and a path.
  hostId = (await store.enrollAgent(await store.createEnrollSecret(now), '<script>alert("host")</script>\u001b[31mred', now))!.agentId;
  const frame = reportFrame(hostId, 1, 'full', [
    { kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: '<img src=x onerror=alert(1)>', after: '1' },
    { kind: 'file-added', severity: 'medium', path: '/etc/<script>alert("path")</script>\u0007' },
  ], now);
  frame.report.host.hostname = '<script>alert("host")</script>\u001b[31mred';
  await store.ingestBatch([{ type: 'report', agentId: hostId, receivedAt: now, frame }]);
}, 30_000);
afterAll(async () => {
  await db?.drop();
});

const form = (fields: Record<string, string>, headers: Record<string, string> = { origin: ORIGIN }, cookie?: string): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers, ...(cookie === undefined ? {} : { cookie: `${SESSION_COOKIE}=${cookie}` }) },
  body: new URLSearchParams(fields).toString(),
});
const cookieOf = (res: Response): string | undefined => new RegExp(`${SESSION_COOKIE}=([^;]+)`).exec(res.headers.get('set-cookie') ?? '')?.[1];
async function logIn(name: string, before?: string): Promise<{ cookie: string; csrf: string }> {
  const res = await fetchApp('/login', form({ name, password: PASSWORD }, { origin: ORIGIN }, before));
  expect(res.status).toBe(303);
  const cookie = cookieOf(res)!;
  const page = await (await fetchApp('/', { headers: { cookie: `${SESSION_COOKIE}=${cookie}` } })).text();
  return { cookie, csrf: /name="_csrf" value="([^"]+)"/.exec(page)![1]! };
}

describe('the console under attack', () => {
  it('sets the session cookie __Host-, HttpOnly, Secure, SameSite=Strict, Path=/', async () => {
    const res = await fetchApp('/login', form({ name: 'ana', password: PASSWORD }));
    expect(res.headers.get('set-cookie')).toMatch(new RegExp(`^${SESSION_COOKIE}=qss\\.[^;]+; Max-Age=\\d+; Path=/; HttpOnly; Secure; SameSite=Strict$`));
  });

  it('locks an account out after repeated wrong passwords, records the lockout, and refuses even the right password then', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await fetchApp('/login', form({ name: 'bob', password: `guess ${i} wrong wrong` }))).status);
    expect(statuses).toEqual([401, 401, 429, 429]);
    const right = await fetchApp('/login', form({ name: 'bob', password: PASSWORD }));
    expect(right.status).toBe(429);
    expect(cookieOf(right)).toBeUndefined();
    const audit = (await store.triage.listAudit({ action: 'login-lockout', limit: 10 })).entries;
    expect(audit.map((e) => e.target)).toEqual(['account:bob']);
    now = new Date(now.getTime() + DEFAULT_SESSION_POLICY.lockMs + 1000);
    expect((await fetchApp('/login', form({ name: 'bob', password: PASSWORD }))).status).toBe(303);
  }, 30_000);

  it('refuses a state change that does not come from this origin, form or JSON, cookie and token or not', async () => {
    const { cookie, csrf } = await logIn('ana');
    const approve = `/hosts/${hostId}/findings/1/approve`;
    expect((await fetchApp(approve, form({ _csrf: csrf, reason: 'x' }, { origin: 'https://evil.test' }, cookie))).status).toBe(403);
    expect((await fetchApp(approve, form({ _csrf: csrf, reason: 'x' }, { 'sec-fetch-site': 'cross-site' }, cookie))).status).toBe(403);
    expect((await fetchApp(approve, form({ _csrf: csrf, reason: 'x' }, {}, cookie))).status).toBe(403);
    // JSON to the API with the cookie: Hono's csrf() lets JSON through; ours does not.
    const json = (headers: Record<string, string>) => fetchApp(`/api/v1/hosts/${hostId}/findings/1/approve`, { method: 'POST', headers: { 'content-type': 'application/json', cookie: `${SESSION_COOKIE}=${cookie}`, ...headers }, body: JSON.stringify({ reason: 'x' }) });
    expect((await json({ origin: 'https://evil.test', 'x-csrf-token': csrf })).status).toBe(403);
    expect((await json({ origin: ORIGIN })).status).toBe(403);
    expect(await store.triage.listAudit({ action: 'approve', limit: 10 })).toMatchObject({ entries: [] });
    // The session can read the API, and act through it from this origin with its token.
    expect((await fetchApp(`/api/v1/hosts/${hostId}`, { headers: { cookie: `${SESSION_COOKIE}=${cookie}` } })).status).toBe(200);
    expect((await json({ origin: ORIGIN, 'x-csrf-token': csrf })).status).toBe(201);
    await store.triage.reopen({ hostId, findingId: 1, reason: 'test', actor: { id: 't', role: 'admin' }, now });
  });

  it("refuses a form carrying another session's token, an auditor's triage, and an expired session", async () => {
    const ana = await logIn('ana');
    const aud = await logIn('aud');
    const approve = `/hosts/${hostId}/findings/1/approve`;
    expect((await fetchApp(approve, form({ _csrf: aud.csrf, reason: 'x' }, { origin: ORIGIN }, ana.cookie))).status).toBe(403);
    expect((await fetchApp(approve, form({ _csrf: aud.csrf, reason: 'x' }, { origin: ORIGIN }, aud.cookie))).status).toBe(403);
    expect(await (await fetchApp(`/hosts/${hostId}`, { headers: { cookie: `${SESSION_COOKIE}=${aud.cookie}` } })).text()).not.toContain('Approve');
    expect((await fetchApp('/admin', { headers: { cookie: `${SESSION_COOKIE}=${ana.cookie}` } })).status).toBe(403);
    now = new Date(now.getTime() + DEFAULT_SESSION_POLICY.idleMs + 1000);
    const expired = await fetchApp('/', { headers: { cookie: `${SESSION_COOKIE}=${ana.cookie}` } });
    expect([expired.status, expired.headers.get('location')]).toEqual([303, '/login?next=%2F']);
    expect((await fetchApp('/api/v1/hosts', { headers: { cookie: `${SESSION_COOKIE}=${ana.cookie}` } })).status).toBe(401);
  });

  it('never keeps a session id from before the login', async () => {
    const planted = (await store.createSession({ user: 'aud', now, idleMs: 60_000, absoluteMs: 60_000 })).token;
    const { cookie } = await logIn('ana', planted);
    expect(cookie).not.toBe(planted);
    expect(await store.authenticateSession(planted, now)).toBeNull();
    expect((await store.authenticateSession(cookie, now))?.user).toBe('ana');
  });

  it('shows markup and control characters from an agent as text: hostname, package name, path and diff', async () => {
    const { cookie } = await logIn('ana');
    for (const page of [`/hosts/${hostId}`, '/']) {
      const html = await (await fetchApp(page, { headers: { cookie: `${SESSION_COOKIE}=${cookie}` } })).text();
      expect(html).not.toMatch(/<script|<img/i);
      expect(html).not.toMatch(/[\u0000-\u0008\u001b]/);
      expect(html).toContain('&lt;script&gt;alert(&quot;host&quot;)&lt;/script&gt;\\u{1b}[31mred');
      if (page !== '/') {
        expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
        expect(html).toContain('/etc/&lt;script&gt;alert(&quot;path&quot;)&lt;/script&gt;\\u{7}');
      }
    }
    const session = (await store.authenticateSession(cookie, now))!;
    const host = { ...(await store.getHost(hostId, now))!, connected: false };
    const f = (await store.listFindings(hostId, { state: 'open' }, now))![0]!;
    const withDiff = { ...f, configDiff: '--- a/etc/x\n+++ b/etc/x\n@@ -1 +1 @@\n-old\n+<script>alert("diff")</script>\u001b]0;title\u0007' };
    const html = String(HostPage({ session, host, findings: [withDiff], history: [] }));
    expect(html).toContain('<span class="add">+&lt;script&gt;alert(&quot;diff&quot;)&lt;/script&gt;\\u{1b}]0;title\\u{7}');
    expect(html).not.toMatch(/<script|[\u0000-\u0008\u001b]/);
  });

  it('refuses the admin forms to analysts and auditors, the waiver to auditors, and every new form from another origin', async () => {
    const ana = await logIn('ana');
    const aud = await logIn('aud');
    const adm = await logIn('adm');
    const adminForms: Array<[string, Record<string, string>]> = [
      ['/admin/users', { name: 'mallory', role: 'admin' }],
      ['/admin/users/ana/password', {}],
      ['/admin/users/adm/disable', {}],
      ['/admin/tokens', { user: 'adm', name: 'stolen' }],
      ['/admin/enroll-secrets', {}],
      ['/sinks', { type: 'webhook', id: 'exfil', url: 'https://evil.test/', secret: 'sixteen chars or more' }],
      ['/rules', { text: '{"schema":"quicksand.rules/v1","rules":[{"id":"all","action":{"type":"suppress"}}]}' }],
    ];
    for (const who of [ana, aud]) {
      for (const [path, fields] of adminForms) expect([path, (await fetchApp(path, form({ _csrf: who.csrf, ...fields }, { origin: ORIGIN }, who.cookie))).status]).toEqual([path, 403]);
    }
    for (const page of ['/admin', '/sinks']) expect((await fetchApp(page, { headers: { cookie: `${SESSION_COOKIE}=${ana.cookie}` } })).status).toBe(403);
    expect(await (await fetchApp('/rules', { headers: { cookie: `${SESSION_COOKIE}=${ana.cookie}` } })).text()).not.toContain('<textarea');
    const waive = `/hosts/${hostId}/findings/1/waive`;
    expect((await fetchApp(waive, form({ _csrf: aud.csrf, rule: 'w', reason: 'x', scope: 'fleet' }, { origin: ORIGIN }, aud.cookie))).status).toBe(403);
    // The admin's own session, token and all, from another site: refused before any form is read.
    for (const [path, fields] of [...adminForms, [waive, { rule: 'w', reason: 'x', scope: 'fleet' }] as [string, Record<string, string>]]) {
      expect([path, (await fetchApp(path, form({ _csrf: adm.csrf, ...fields }, { origin: 'https://evil.test' }, adm.cookie))).status]).toEqual([path, 403]);
      expect([path, (await fetchApp(path, form({ _csrf: adm.csrf, ...fields }, { 'sec-fetch-site': 'cross-site' }, adm.cookie))).status]).toEqual([path, 403]);
    }
    expect((await store.listUsers()).map((u) => u.name)).not.toContain('mallory');
    expect(await store.listSinks()).toEqual([]);
    expect(await store.triage.currentRules()).toBeNull();
    expect((await store.listApiTokens()).length + (await store.listEnrollSecrets(now)).length).toBe(1); // the agent's enrolment secret only
  });

  it('refuses a console form body larger than 1 MiB before reading it', async () => {
    const adm = await logIn('adm');
    const res = await fetchApp('/rules', form({ _csrf: adm.csrf, text: 'x'.repeat(1024 * 1024 + 10) }, { origin: ORIGIN }, adm.cookie));
    expect(res.status).toBe(413);
    expect(await store.triage.currentRules()).toBeNull();
  });

  it('shows markup and control characters in a rule id, a sink name and a waiver notice as text', async () => {
    const adm = await logIn('adm');
    const hostile = '<script>alert("x")</script>\u001b[31m';
    const rules = JSON.stringify({ schema: 'quicksand.rules/v1', rules: [{ id: hostile, description: hostile, action: { type: 'suppress' }, match: { path: '/nowhere' } }] });
    expect((await fetchApp('/rules', form({ _csrf: adm.csrf, text: rules }, { origin: ORIGIN }, adm.cookie))).status).toBe(303);
    await store.saveSink({ type: 'webhook', id: hostile, name: hostile, url: 'https://hooks.test/', secret: 'sixteen chars or more', minSeverity: 'low', timeoutMs: 1000 }, now);
    const waived = await fetchApp(`/hosts/${hostId}/findings/1/waive`, form({ _csrf: adm.csrf, rule: hostile, reason: 'x', scope: 'fleet' }, { origin: ORIGIN }, adm.cookie));
    expect(decodeURIComponent(waived.headers.get('location')!)).toMatch(/done=Not done: .*rules\[1\]\.id: "<script>/);
    const pages = ['/rules', '/sinks', waived.headers.get('location')!];
    // An invalid document echoed back in the editor, with its problems, is inert too.
    const refused = await (await fetchApp('/rules', form({ _csrf: adm.csrf, text: `{"schema":"quicksand.rules/v1","rules":[{"id":"a",${JSON.stringify(hostile)}:1}]}` }, { origin: ORIGIN }, adm.cookie))).text();
    for (const html of [...(await Promise.all(pages.map(async (p) => (await fetchApp(p, { headers: { cookie: `${SESSION_COOKIE}=${adm.cookie}` } })).text()))), refused]) {
      expect(html).not.toMatch(/<script/i);
      expect(html).not.toMatch(/[\u0000-\u0008\u001b]/);
      // As text: in a table cell, or inside the JSON of the document (its quotes escaped there).
      expect(html).toMatch(/&lt;script&gt;alert\(\\?&quot;x\\?&quot;\)&lt;\/script&gt;/);
    }
    await store.deleteSink(hostile);
  });
});
