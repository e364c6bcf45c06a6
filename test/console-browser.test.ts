// The console in a real headless Chromium (Debian's, driven by playwright-core), against a real
// server on loopback and a real agent daemon watching a copy of a debootstrap tree: each role
// logs in, a real `apt-get install` in the chroot turns the host into a pet, the analyst opens its
// change set and approves it (cattle again), the auditor sees no triage form and a forged POST
// gets 403, and a logged-out session is dead on the server. Screenshots go to a folder outside
// the repository (printed at the end) to be looked at.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { manifestFromObservation } from '../agent/manifest/build.js';
import { observe } from '../agent/fingerprint/observe.js';
import { createConfigTextReader } from '../agent/fingerprint/config-text.js';
import { startDaemon } from '../agent/daemon/daemon.js';
import type { Daemon } from '../agent/daemon/daemon.js';
import { createOutbox } from '../agent/deliver/outbox.js';
import { openRoot } from '../agent/root.js';
import { scanRoot } from '../agent/diff/scan.js';
import { openStateDb } from '../agent/state-db.js';
import { createTransport } from '../agent/deliver/transport.js';
import { SESSION_COOKIE } from '../shared/console.js';
import { defaultPolicy } from '../shared/policy.js';
import { hashPassword } from '../server/passwords.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { copyTree, ensureMinbase, ensureWithLanguages } from './helpers/debian-root.js';
import { waitFor } from './helpers/processes.js';

export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const PASSWORD = 'console test password 1';
const SHOTS = path.join(tmpdir(), 'quicksand-console-screenshots');

let work: string;
let server: RunningServer;
let tree: { dir: string; remove: () => void };
let daemon: Daemon;
let closeDb: () => void;
let browser: Browser;
let base: string;
let hostId: string;

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'quicksand-console-'));
  rmSync(SHOTS, { recursive: true, force: true });
  mkdirSync(SHOTS, { recursive: true });
  server = await startServer({ db: path.join(work, 'server.db'), port: 0, host: '127.0.0.1' });
  base = server.url;
  const hash = await hashPassword(PASSWORD);
  for (const [name, role] of [['root-admin', 'admin'], ['ana', 'analyst'], ['aud', 'auditor']] as const) await server.store.createUser({ name, role, passwordHash: hash, now: new Date() });
  tree = copyTree(ensureMinbase());
  const config = await enrollAgent(server.url, await server.store.createEnrollSecret(new Date()), 'console-host');
  hostId = config.agentId;
  const db = openStateDb(path.join(work, 'agent-state'));
  closeDb = () => db.close();
  const outbox = createOutbox(db);
  const root = await openRoot(tree.dir);
  const manifest = manifestFromObservation(await observe(root, defaultPolicy()), defaultPolicy(), { name: 'debian-minbase', version: '1' }, new Date());
  // The image's config files carry their text, as `agent manifest` writes them: a change shows as a diff.
  await createConfigTextReader(root, defaultPolicy()).fillRecords(manifest.files);
  const transport = createTransport({ config, outbox, host: { hostname: 'console-host' }, image: { name: manifest.image.name, version: manifest.image.version }, backoff: { firstMaxMs: 100, baseMs: 200, capMs: 1000 } });
  daemon = startDaemon({ root, manifest, outbox, transport, hostId, hostname: 'console-host', scan: (r, m) => scanRoot(r, m, { hostname: 'console-host' }), log: () => {} });
  await waitFor('the first report', async () => ((await server.store.getHost(hostId, new Date()))?.reports ?? 0) >= 1, 60_000);
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_FLAGS });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await daemon?.stop();
  closeDb?.();
  await server?.close();
  tree?.remove();
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
  console.log(`console screenshots in ${SHOTS}: ${readdirSync(SHOTS).join(', ')}`);
});

async function logIn(name: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${base}/`);
  expect(new URL(page.url()).pathname).toBe('/login');
  await page.getByLabel('User name').fill(name);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`${base}/`);
  await expect(page.getByRole('heading', { name: 'Fleet' }).isVisible()).resolves.toBe(true);
  return page;
}
const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

describe('the console in a real browser', () => {
  it('shows the host cattle, then a pet after a real apt-get install with its change set; the analyst approves it back to cattle', async () => {
    const admin = await logIn('root-admin');
    await expect(admin.locator('td.cattle').count()).resolves.toBe(1);
    await shot(admin, '1-fleet-cattle-admin');
    // The cookie as the browser holds it: __Host-, HttpOnly, Secure, SameSite=Strict on plain-http loopback.
    const [cookie] = await admin.context().cookies();
    expect(cookie).toMatchObject({ name: SESSION_COOKIE, httpOnly: true, secure: true, sameSite: 'Strict', path: '/' });

    const archives = path.join(ensureWithLanguages(), 'var/cache/apt/archives');
    for (const n of readdirSync(archives).filter((n) => /^(libbsd0|libmd0|netcat-openbsd)_.*\.deb$/.test(n))) copyFileSync(path.join(archives, n), path.join(tree.dir, 'var/cache/apt/archives', n));
    await promisify(execFile)('chroot', [tree.dir, 'apt-get', 'install', '-y', '-q', '--no-download', '--no-install-recommends', 'netcat-openbsd'], {
      timeout: 120_000,
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive', LANG: 'C' },
    });
    await waitFor('the install on the server', async () => ((await server.store.listFindings(hostId, { state: 'open' }, new Date())) ?? []).some((f) => f.name === 'netcat-openbsd' && f.changeSet !== null), 60_000);

    const ana = await logIn('ana');
    await ana.getByRole('link', { name: 'console-host' }).click();
    await expect(ana.locator('#status').textContent()).resolves.toBe('pet');
    const changeSet = ana.locator('section.changeset', { hasText: 'apt-get install -y -q --no-download --no-install-recommends netcat-openbsd' });
    await expect(changeSet.count()).resolves.toBe(1);
    // Its files, nested under the package.
    const fileLists = changeSet.locator('summary', { hasText: / files$/ });
    for (let i = 0; i < (await fileLists.count()); i++) await fileLists.nth(i).click();
    await expect(changeSet.getByText('/usr/bin/nc.openbsd').first().isVisible()).resolves.toBe(true);
    await shot(ana, '2-host-pet-change-set-analyst');

    await changeSet.locator('summary', { hasText: 'Approve the whole change set' }).click();
    await changeSet.getByLabel('Reason (required)').first().fill('netcat for the on-call runbook');
    await changeSet.getByLabel('Ticket').first().fill('CHG-1234');
    await changeSet.getByRole('button', { name: 'Approve' }).first().click();
    await ana.waitForURL(/done=/);
    // What else is open is ldconfig's cache rewrite (a hand edit to the page): approve it too.
    for (;;) {
      const open = ana.locator('summary', { hasText: 'Approve this finding' });
      if ((await open.count()) === 0) break;
      await open.first().click();
      const form = ana.locator('details[open] form').first();
      await form.getByLabel('Reason (required)').fill('trigger of the approved install');
      await form.getByRole('button', { name: 'Approve' }).click();
      await ana.waitForLoadState();
    }
    await expect(ana.locator('#status').textContent()).resolves.toBe('cattle');
    await expect(ana.getByText(/approve-change-set by ana \(analyst\) — netcat for the on-call runbook/).isVisible()).resolves.toBe(true);
    await shot(ana, '3-host-cattle-after-approval');
    await ana.context().close();
    await admin.context().close();
  }, 150_000);

  it("shows the auditor no triage form and refuses the auditor's forged POST with 403", async () => {
    const aud = await logIn('aud');
    await aud.goto(`${base}/hosts/${hostId}`);
    await expect(aud.locator('form[action*="approve"], form[action*="reopen"], form[action*="rebaseline"], form[action*="scan-now"]').count()).resolves.toBe(0);
    await shot(aud, '4-host-auditor-read-only');
    // A POST made by hand with the auditor's own cookie, token and origin: the server refuses it.
    const csrf = await aud.locator('input[name="_csrf"]').first().getAttribute('value');
    const res = await aud.context().request.post(`${base}/hosts/${hostId}/rebaseline`, { form: { _csrf: csrf!, reason: 'forged' }, headers: { origin: base } });
    expect(res.status()).toBe(403);
    await aud.context().close();
  }, 60_000);

  it('kills the session on the server at logout: the old cookie is refused afterwards', async () => {
    const ana = await logIn('ana');
    const [cookie] = await ana.context().cookies();
    await ana.getByRole('button', { name: 'Log out' }).click();
    await ana.waitForURL(/\/login$/);
    await shot(ana, '5-logged-out');
    const replay = await fetch(`${base}/`, { headers: { cookie: `${SESSION_COOKIE}=${cookie!.value}` }, redirect: 'manual' });
    expect([replay.status, replay.headers.get('location')]).toEqual([303, '/login?next=%2F']);
    expect((await fetch(`${base}/api/v1/hosts`, { headers: { cookie: `${SESSION_COOKIE}=${cookie!.value}` } })).status).toBe(401);
    // A phone-sized view of the fleet, for the eye.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const p = await phone.newPage();
    await p.goto(`${base}/login`);
    await p.getByLabel('User name').fill('aud');
    await p.getByLabel('Password').fill(PASSWORD);
    await p.getByRole('button', { name: 'Log in' }).click();
    await p.waitForURL(`${base}/`);
    await shot(p, '6-fleet-phone');
    await phone.close();
    await ana.context().close();
  }, 60_000);

  it('shows the unified diff of a real edit to /etc/login.defs, reported by the real agent, on the host page', async () => {
    const defs = path.join(tree.dir, 'etc/login.defs');
    writeFileSync(defs, readFileSync(defs, 'utf8').replace('PASS_MAX_DAYS\t99999', 'PASS_MAX_DAYS\t90'));
    await waitFor('the config diff on the server', async () => ((await server.store.listFindings(hostId, { state: 'open' }, new Date())) ?? []).some((f) => f.path === '/etc/login.defs' && f.configDiff !== undefined), 60_000);
    const aud = await logIn('aud');
    await aud.goto(`${base}/hosts/${hostId}`);
    const diff = aud.locator('li', { hasText: '/etc/login.defs' }).locator('pre.diff');
    await expect(diff.locator('span.del', { hasText: 'PASS_MAX_DAYS\t99999' }).count()).resolves.toBe(1);
    await expect(diff.locator('span.add', { hasText: 'PASS_MAX_DAYS\t90' }).isVisible()).resolves.toBe(true);
    await expect(diff.locator('span.file', { hasText: '+++ b/etc/login.defs' }).count()).resolves.toBe(1);
    await diff.scrollIntoViewIfNeeded();
    await shot(aud, '7-host-config-diff-auditor');
    await aud.context().close();
  }, 90_000);

  it('lets the admin edit the rules: an invalid document shows the schema’s message at its line, a valid one is saved', async () => {
    const admin = await logIn('root-admin');
    await admin.getByRole('link', { name: 'Rules' }).click();
    const editor = admin.getByLabel('The rule document (JSON)');
    await editor.fill('{\n  "schema": "quicksand.rules/v1",\n  "rules": [\n    { "id": "quiet-motd",\n      "match": { "path": "etc/motd" },\n      "action": { "type": "suppress" } }\n  ]\n}');
    await admin.getByLabel('Reason (for the audit log)').fill('motd changes are noise');
    await admin.getByRole('button', { name: 'Save the rules' }).click();
    await admin.waitForLoadState();
    await expect(editor.getAttribute('aria-invalid')).resolves.toBe('true');
    const problems = admin.locator('#rules-problems');
    await expect(problems.getByText('line 5, rules[0].match.path: expected an absolute path glob').isVisible()).resolves.toBe(true);
    await expect(problems.locator('mark').textContent()).resolves.toBe('   5       "match": { "path": "etc/motd" },\n');
    await shot(admin, '8-rules-editor-invalid-admin');
    await editor.fill((await editor.inputValue()).replace('"etc/motd"', '"/etc/motd"'));
    await admin.getByRole('button', { name: 'Save the rules' }).click();
    await admin.waitForURL(/\/rules\?done=/);
    await expect(admin.getByRole('status').textContent()).resolves.toMatch(/saved rule set version \d+/);
    await expect(editor.getAttribute('aria-invalid')).resolves.toBeNull();
    await shot(admin, '9-rules-saved-admin');
    await admin.context().close();
  }, 60_000);

  it('gives the auditor the rules read-only, no admin page, and 403 on forged admin and rules POSTs', async () => {
    const aud = await logIn('aud');
    await aud.goto(`${base}/rules`);
    await expect(aud.locator('textarea, form[action="/rules"]').count()).resolves.toBe(0);
    await expect(aud.getByText('/etc/motd').first().isVisible()).resolves.toBe(true);
    await shot(aud, '10-rules-auditor-read-only');
    await expect(aud.getByRole('link', { name: 'Users and credentials' }).count()).resolves.toBe(0);
    const csrf = await aud.locator('input[name="_csrf"]').first().getAttribute('value');
    for (const [url, form] of [['/admin/users', { name: 'mallory', role: 'admin' }], ['/rules', { text: '{"schema":"quicksand.rules/v1"}' }], ['/sinks', { type: 'slack', id: 'x', url: 'https://hooks.test/x' }]] as const) {
      const res = await aud.context().request.post(`${base}${url}`, { form: { _csrf: csrf!, ...form }, headers: { origin: base } });
      expect([url, res.status()]).toEqual([url, 403]);
    }
    expect((await aud.goto(`${base}/admin`))!.status()).toBe(403);
    await aud.context().close();
  }, 60_000);

  it('labels every control, reaches the primary form by keyboard with a visible focus, and has no horizontal scroll at 390 px', async () => {
    const pages = ['/', `/hosts/${hostId}`, '/images', '/alerts', '/rules', '/sinks', '/audit', '/export', '/admin'];
    const unlabelled = (page: Page) =>
      // In the page (a string: this project's TypeScript has no DOM types).
      page.evaluate(`[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')).map((e) => e.outerHTML.slice(0, 120))`) as Promise<string[]>;
    const admin = await logIn('root-admin');
    for (const p of pages) {
      await admin.goto(`${base}${p}`);
      // Open every <details> so the controls inside them are counted too.
      await admin.evaluate(`document.querySelectorAll('details').forEach((e) => e.setAttribute('open', ''))`);
      expect([p, await unlabelled(admin)]).toEqual([p, []]);
    }
    // Keyboard only: from the top of the rules page, Tab reaches the editor, focus drawn visibly.
    await admin.goto(`${base}/rules`);
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await admin.keyboard.press('Tab');
      reached = (await admin.evaluate(`document.activeElement?.id`)) === 'rules-text';
    }
    expect(reached).toBe(true);
    await expect(admin.evaluate(`getComputedStyle(document.activeElement).outlineStyle`)).resolves.toBe('solid');
    // The first Tab of a page lands on the skip link, which shows itself.
    await admin.goto(`${base}/admin`);
    await admin.keyboard.press('Tab');
    await expect(admin.evaluate(`document.activeElement?.textContent`)).resolves.toBe('Skip to content');
    await admin.context().close();

    const phone = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const p = await phone.newPage();
    await p.goto(`${base}/login`);
    await p.getByLabel('User name').fill('root-admin');
    await p.getByLabel('Password').fill(PASSWORD);
    await p.getByRole('button', { name: 'Log in' }).click();
    await p.waitForURL(`${base}/`);
    for (const path_ of pages) {
      await p.goto(`${base}${path_}`);
      const [scroll, client] = (await p.evaluate(`[document.documentElement.scrollWidth, document.documentElement.clientWidth]`)) as [number, number];
      expect([path_, scroll <= client]).toEqual([path_, true]);
    }
    await p.goto(`${base}/hosts/${hostId}`);
    await shot(p, '11-host-phone-admin');
    await p.goto(`${base}/admin`);
    // On a phone the heading row is hidden, so each cell shows its column's heading above it.
    const firstUserRow = (await p.evaluate(`[...document.querySelectorAll('table.wide')[0].querySelectorAll('tbody tr:first-child td')].map((td) => [getComputedStyle(td, '::before').content, td.getBoundingClientRect().width > 0])`)) as Array<[string, boolean]>;
    expect(firstUserRow.slice(0, 3)).toEqual([['"Name"', true], ['"Role"', true], ['"Created"', true]]);
    await shot(p, '12-admin-phone');
    await phone.close();
  }, 90_000);
});
