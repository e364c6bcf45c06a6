// The console's alerts, sinks, rules and admin pages and the waive-by-rule form, through the real
// server routing (console and API on one fetch, a real SQLite file) and a real webhook receiver
// on loopback: each form does what its API does, is audited under the acting user's name, and
// shows a secret only once.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_COOKIE } from '../shared/console.js';
import { createApp } from '../server/api/app.js';
import { deliverDue } from '../server/alerts/queue.js';
import type { Alert } from '../server/alerts/alert.js';
import { createMetrics } from '../server/metrics.js';
import { hashPassword, verifyPassword } from '../server/passwords.js';
import { isApiPath } from '../server/server.js';
import type { Store } from '../server/store/types.js';
import { createConsole } from '../server/web/console.js';
import { checkRulesText } from '../server/web/rules-editor.js';
import { STORE_BACKENDS, reportFrame } from './helpers/store-backends.js';
import type { FreshStore } from './helpers/store-backends.js';

const ORIGIN = 'http://console.test';
const PASSWORD = 'correct horse battery staple';
const now = new Date('2026-12-01T10:00:00Z');
let db: FreshStore;
let store: Store;
let fetchApp: (path: string, init?: RequestInit) => Promise<Response>;
let hostId: string;
let receiver: Server;
let receiverUrl: string;
const received: string[] = [];

beforeAll(async () => {
  db = await STORE_BACKENDS[0]!.fresh();
  store = db.store;
  const hash = await hashPassword(PASSWORD);
  for (const [name, role] of [['adm', 'admin'], ['ana', 'analyst'], ['aud', 'auditor']] as const) await store.createUser({ name, role, passwordHash: hash, now });
  // A webhook receiver: /ok answers 200, /bad 400 (not retried).
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      received.push(`${req.url} ${body}`);
      res.statusCode = req.url === '/ok' ? 200 : 400;
      res.end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const api = createApp({ store, clock: () => now, metrics: createMetrics() });
  const web = createConsole({ store, clock: () => now });
  fetchApp = async (path, init) => {
    const req = new Request(`${ORIGIN}${path}`, { redirect: 'manual', ...init });
    return isApiPath(new URL(req.url).pathname) ? api.fetch(req) : web.fetch(req);
  };
  hostId = (await store.enrollAgent(await store.createEnrollSecret(now), 'web-1', now))!.agentId;
  const frame = reportFrame(hostId, 1, 'full', [
    { kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: 'netcat-openbsd', after: '1.219-1' },
    { kind: 'file-modified', severity: 'medium', path: '/etc/motd' },
  ], now);
  await store.ingestBatch([{ type: 'report', agentId: hostId, receivedAt: now, frame }]);
}, 60_000);
afterAll(async () => {
  receiver?.close();
  await db?.drop();
});

type Session = { cookie: string; csrf: string };
const form = (fields: Record<string, string>, s: Session): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded', origin: ORIGIN, cookie: `${SESSION_COOKIE}=${s.cookie}` },
  body: new URLSearchParams({ _csrf: s.csrf, ...fields }).toString(),
});
async function logIn(name: string, password = PASSWORD): Promise<Session> {
  const res = await fetchApp('/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: ORIGIN }, body: new URLSearchParams({ name, password }).toString() });
  const cookie = new RegExp(`${SESSION_COOKIE}=([^;]+)`).exec(res.headers.get('set-cookie') ?? '')![1]!;
  const page = await (await fetchApp('/', { headers: { cookie: `${SESSION_COOKIE}=${cookie}` } })).text();
  return { cookie, csrf: /name="_csrf" value="([^"]+)"/.exec(page)![1]! };
}
const get = async (path: string, s: Session) => {
  const res = await fetchApp(path, { headers: { cookie: `${SESSION_COOKIE}=${s.cookie}` } });
  return { status: res.status, html: await res.text() };
};
const lastAudit = async (action: string) => (await store.triage.listAudit({ action, limit: 1 })).entries[0];

describe('the console pages and forms', () => {
  it('edits the rules as admin: an invalid document is refused with each message at its line, a valid one saved and audited', async () => {
    const adm = await logIn('adm');
    const bad = '{\n  "schema": "quicksand.rules/v1",\n  "rules": [\n    { "id": "motd",\n      "match": { "path": "etc/motd" },\n      "action": { "type": "suppress" } }\n  ]\n}';
    const refused = await fetchApp('/rules', form({ text: bad, reason: 'quiet motd' }, adm));
    expect(refused.status).toBe(400);
    const html = await refused.text();
    expect(html).toContain('line 5, rules[0].match.path: expected an absolute path glob');
    expect(html).toMatch(/<textarea id="rules-text" name="text"[^>]* aria-invalid="true" aria-describedby="rules-problems"/);
    expect(html).toContain('<mark>   5       &quot;match&quot;: { &quot;path&quot;: &quot;etc/motd&quot; },');
    expect(await store.triage.currentRules()).toBeNull();
    const saved = await fetchApp('/rules', form({ text: bad.replace('"etc/motd"', '"/etc/motd"'), reason: 'quiet motd' }, adm));
    expect([saved.status, saved.headers.get('location')]).toEqual([303, '/rules?done=saved%20rule%20set%20version%201']);
    expect(await lastAudit('rules-update')).toMatchObject({ actorName: 'adm', role: 'admin', reason: 'quiet motd', target: 'rules:1' });
    // The analyst reads the rules, with no editor, and may not post one.
    const ana = await logIn('ana');
    const page = await get('/rules', ana);
    expect(page.html).toContain('&quot;/etc/motd&quot;');
    expect(page.html).not.toContain('<textarea');
    expect((await fetchApp('/rules', form({ text: bad }, ana))).status).toBe(403);
  });

  it('names the lines of syntax errors, duplicate ids and missing fields, and refuses documents nested absurdly deep', () => {
    expect(checkRulesText('{\n  "schema": "quicksand.rules/v1",\n  "rules": [\n}')).toMatchObject({ problems: [{ line: 4, path: '(document)' }] });
    const dup = '{"schema":"quicksand.rules/v1","rules":[\n{"id":"a","action":{"type":"suppress"}},\n{"id":"a","action":{"type":"suppress"}}]}';
    expect(checkRulesText(dup)).toEqual({ problems: [{ line: 3, path: 'rules[1].id', message: '"a" is used twice' }] });
    expect(checkRulesText('{"schema":"quicksand.rules/v1","rules":[\n  {"id":"a"}]}')).toMatchObject({ problems: [{ line: 2, path: 'rules[0].action' }] });
    expect(checkRulesText(`${'['.repeat(100_000)}${']'.repeat(100_000)}`)).toMatchObject({ problems: [{ line: 1, message: 'nested deeper than 32 levels' }] });
  });

  it('waives a finding by rule from the host page (analyst), the host counted again; the auditor is refused', async () => {
    const ana = await logIn('ana');
    const host = await get(`/hosts/${hostId}`, ana);
    const fid = /findings\/(\d+)\/waive/.exec(host.html)![1]!;
    const pkg = (await store.listFindings(hostId, { state: 'open' }, now))!.find((f) => f.name === 'netcat-openbsd')!;
    expect(String(pkg.id)).toBe(fid);
    const aud = await logIn('aud');
    expect((await get(`/hosts/${hostId}`, aud)).html).not.toContain('/waive');
    expect((await fetchApp(`/hosts/${hostId}/findings/${fid}/waive`, form({ rule: 'nc-ok', reason: 'runbook', scope: 'fleet' }, aud))).status).toBe(403);
    const res = await fetchApp(`/hosts/${hostId}/findings/${fid}/waive`, form({ rule: 'nc-ok', reason: 'netcat is in the runbook', scope: 'fleet' }, ana));
    expect(res.status).toBe(303);
    expect(decodeURIComponent(res.headers.get('location')!)).toBe(`/hosts/${hostId}?done=rule nc-ok added (rule set version 2)`);
    const rules = (await store.triage.currentRules())!.set as { rules: Array<{ id: string; match: unknown; action: unknown }> };
    expect(rules.rules.map((r) => r.id)).toEqual(['motd', 'nc-ok']);
    expect(rules.rules[1]).toMatchObject({ match: { kind: 'package-added', ecosystem: 'dpkg', package: 'netcat-openbsd' }, action: { type: 'suppress' } });
    expect((await store.listFindings(hostId, { state: 'all' }, now))!.find((f) => f.id === pkg.id)!.triage.state).toBe('waived');
    expect(await store.getHost(hostId, now)).toMatchObject({ status: 'cattle' });
    expect(await lastAudit('rules-update')).toMatchObject({ actorName: 'ana', reason: 'netcat is in the runbook' });
    // A second waiver with the same rule id: refused, named, nothing saved.
    const again = await fetchApp(`/hosts/${hostId}/findings/${fid}/waive`, form({ rule: 'nc-ok', reason: 'again', scope: 'fleet' }, ana));
    expect(decodeURIComponent(again.headers.get('location')!)).toMatch(/Not done: .*rules\[2\]\.id: "nc-ok" is used twice/);
  });

  it('adds, tests and removes a sink as admin; the secret is never shown back; a refusal is shown at its field', async () => {
    const adm = await logIn('adm');
    const refused = await fetchApp('/sinks', form({ type: 'webhook', id: 'hook', url: 'ftp://x', secret: 'short-secret-xyz-1' }, adm));
    expect(refused.status).toBe(400);
    const html = await refused.text();
    expect(html).toMatch(/<input id="sink-url" name="url"[^>]*aria-invalid="true" aria-describedby="sink-url-error"/);
    expect(html).toContain('id="sink-url-error">url: expected an http:// or https:// URL');
    expect(html).not.toContain('short-secret-xyz-1');
    const added = await fetchApp('/sinks', form({ type: 'webhook', id: 'hook', url: `${receiverUrl}/ok`, secret: 'a very secret webhook key' }, adm));
    expect(added.status).toBe(303);
    const list = await get('/sinks', adm);
    expect(list.html).toContain('hook');
    expect(list.html).not.toContain('a very secret webhook key');
    const tested = await (await fetchApp('/sinks/hook/test', form({}, adm))).text();
    expect(tested).toContain('Test alert to hook: delivered (HTTP 200)');
    expect(received.some((r) => r.startsWith('/ok ') && r.includes('Quicksand test alert to sink hook'))).toBe(true);
    expect(await lastAudit('sink-test')).toMatchObject({ actorName: 'adm', target: 'sink:hook', detail: { ok: true } });
    expect(await lastAudit('sink-create')).toMatchObject({ actorName: 'adm', target: 'sink:hook' });
    expect((await fetchApp('/sinks/hook/delete', form({}, adm))).status).toBe(303);
    expect(await store.listSinks()).toEqual([]);
    expect(await lastAudit('sink-delete')).toMatchObject({ actorName: 'adm' });
    const ana = await logIn('ana');
    expect((await get('/sinks', ana)).status).toBe(403);
  });

  it('lists delivered and given-up alerts with their attempts, sink, error and time; the state filter is in the URL', async () => {
    const sinks = [
      { type: 'webhook' as const, id: 'good', url: `${receiverUrl}/ok`, secret: 'a very secret webhook key', minSeverity: 'low' as const, timeoutMs: 5000 },
      { type: 'webhook' as const, id: 'broken', url: `${receiverUrl}/bad`, secret: 'a very secret webhook key', minSeverity: 'low' as const, timeoutMs: 5000 },
    ];
    const alert: Alert = { action: 'trigger', dedupKey: 'k1', host: { id: hostId, hostname: 'web-1', labels: {} }, image: { name: 'debian', version: '12' }, severity: 'high', title: 'web-1: dpkg install', findings: [], counts: { findings: 1, files: 3 }, at: now.toISOString() };
    await store.alertQueue.enqueue(sinks.map((s, i) => ({ id: `d${i}`, sinkId: s.id, alert, notBefore: now.getTime() })), now);
    await deliverDue({ queue: store.alertQueue, sinks: new Map(sinks.map((s) => [s.id, s])), fetch, now: () => now });
    const aud = await logIn('aud');
    const all = await get('/alerts', aud);
    expect(all.status).toBe(200);
    expect(all.html).toMatch(/<code>good<\/code><\/td><td data-label="State" class="cattle">delivered<\/td><td data-label="Attempts">1<\/td>/);
    expect(all.html).toMatch(/<code>broken<\/code><\/td><td data-label="State" class="pet">gave-up<\/td><td data-label="Attempts">1<\/td><td data-label="Last attempt">2026-12-01T10:00:00.000Z: failed HTTP 400/);
    const gaveUp = await get('/alerts?state=gave-up', aud);
    expect(gaveUp.html).toContain('<option value="gave-up" selected="">gave-up</option>');
    expect(gaveUp.html).toContain('broken');
    expect(gaveUp.html).not.toContain('<code>good</code>');
    expect((await get('/alerts?state=lost', aud)).status).toBe(400);
  });

  it('creates and revokes enrolment secrets and user tokens, shown once; adds, disables and re-passwords users; all audited under the admin', async () => {
    const adm = await logIn('adm');
    const made = await (await fetchApp('/admin/enroll-secrets', form({ expires: '7d', uses: '3' }, adm))).text();
    const secret = /<code class="once">(qse\.[^<]+)<\/code>/.exec(made)![1]!;
    expect(await store.enrollAgent(secret, 'new-host', now)).not.toBeNull();
    const admin = await get('/admin', adm);
    expect(admin.html).not.toContain(secret);
    const secretId = secret.split('.')[1]!;
    expect(await lastAudit('enroll-secret-create')).toMatchObject({ actorName: 'adm', target: `enroll-secret:${secretId}`, detail: { maxUses: 3 } });
    expect((await fetchApp('/admin/enroll-secrets', form({ expires: 'soon' }, adm))).status).toBe(400);
    expect((await fetchApp(`/admin/enroll-secrets/${secretId}/revoke`, form({}, adm))).status).toBe(303);
    expect(await store.enrollAgent(secret, 'late-host', now)).toBeNull();

    const tokenPage = await (await fetchApp('/admin/tokens', form({ user: 'aud', name: 'Q4 audit' }, adm))).text();
    const token = /<code class="once">(qst\.[^<]+)<\/code>/.exec(tokenPage)![1]!;
    expect(await store.authenticateApiToken(token)).toMatchObject({ role: 'auditor', user: 'aud', name: 'aud (Q4 audit)' });
    expect((await get('/admin', adm)).html).not.toContain(token);
    expect((await fetchApp(`/admin/tokens/${token.split('.')[1]}/revoke`, form({}, adm))).status).toBe(303);
    expect(await store.authenticateApiToken(token)).toBeNull();
    expect(await lastAudit('token-revoke')).toMatchObject({ actorName: 'adm' });

    const userPage = await (await fetchApp('/admin/users', form({ name: 'eve', role: 'analyst' }, adm))).text();
    const pw = /<code class="once">([^<]+)<\/code>/.exec(userPage)![1]!;
    expect(await verifyPassword(pw, (await store.userForLogin('eve'))!.passwordHash)).toBe(true);
    expect(await lastAudit('user-add')).toMatchObject({ actorName: 'adm', target: 'user:eve', detail: { role: 'analyst' } });
    expect((await fetchApp('/admin/users', form({ name: 'eve', role: 'analyst' }, adm))).status).toBe(400);
    expect((await fetchApp('/admin/users', form({ name: 'Bad Name', role: 'analyst' }, adm))).status).toBe(400);
    expect((await fetchApp('/admin/users', form({ name: 'fay', role: 'auditor', password: 'short' }, adm))).status).toBe(400);
    expect((await fetchApp('/admin/users', form({ name: 'fay', role: 'auditor', password: 'a long enough password' }, adm))).status).toBe(303);
    expect((await fetchApp('/admin/users/eve/disable', form({}, adm))).status).toBe(303);
    expect((await store.listUsers()).find((u) => u.name === 'eve')!.disabledAt).not.toBeNull();
    expect((await fetchApp('/admin/users/eve/enable', form({}, adm))).status).toBe(303);
    expect((await fetchApp('/admin/users/adm/disable', form({}, adm))).status).toBe(400);
    const newPw = /<code class="once">([^<]+)<\/code>/.exec(await (await fetchApp('/admin/users/eve/password', form({}, adm))).text())![1]!;
    expect(await verifyPassword(newPw, (await store.userForLogin('eve'))!.passwordHash)).toBe(true);
    const eve = await logIn('eve', newPw);
    expect((await get('/rules', eve)).html).not.toContain('<textarea');
    expect((await fetchApp('/admin/users/eve/role', form({ role: 'admin' }, adm))).status).toBe(303);
    expect(await lastAudit('user-role')).toMatchObject({ actorName: 'adm', target: 'user:eve', detail: { from: 'analyst', role: 'admin' } });
    expect((await get('/rules', eve)).html).toContain('<textarea');
    expect((await fetchApp('/admin/users/eve/role', form({ role: 'admin' }, adm))).status).toBe(400);
    expect((await fetchApp('/admin/users/eve/role', form({ role: 'root' }, adm))).status).toBe(400);
    expect((await fetchApp('/admin/users/adm/role', form({ role: 'auditor' }, adm))).status).toBe(400);
    expect((await store.triage.listAudit({ actor: 'adm', limit: 100 })).entries.map((e) => e.action)).toEqual(expect.arrayContaining(['user-disable', 'user-enable', 'user-passwd', 'user-role']));
  });

  it('keeps the audit filters in the URL, carried to the older page', async () => {
    const aud = await logIn('aud');
    const page = await get(`/audit?actor=adm&from=2026-12-01&host=${hostId}`, aud);
    expect(page.status).toBe(200);
    expect(page.html).toContain('name="actor" value="adm"');
    const first = await get('/audit?actor=adm&from=2026-12-01', aud);
    expect(first.html).toContain('user-passwd');
    const paged = await get('/audit?actor=adm&from=2026-12-01&limit=2', aud);
    const older = /href="(\/audit\?actor=adm&amp;from=2026-12-01&amp;limit=2&amp;before=\d+)" rel="next">Older entries/.exec(paged.html)![1]!.replaceAll('&amp;', '&');
    const second = await get(older, aud);
    expect(second.html).toContain('name="actor" value="adm"');
    expect(second.html).toContain('Newest entries');
    expect(second.html.match(/<tr><td data-label="At">2026/g)).toHaveLength(2);
    const bad = await get('/audit?from=yesterday', aud);
    expect(bad.status).toBe(400);
    expect(bad.html).toMatch(/name="from" value="yesterday" maxlength="40" aria-invalid="true" aria-describedby="audit-error"/);
  });
});
