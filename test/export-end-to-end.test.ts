// The compliance export end to end: a real server on loopback (its clock injected), two real
// agents' reports over the wire, real triage acts through the API (approve with a ticket, an
// approval that expires, a waiver by rule, a re-baseline), a degraded watch and a host going
// stale; then the period exported in every format, read back, and its signatures checked.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, verify } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { createOutbox } from '../agent/deliver/outbox.js';
import { openStateDb } from '../agent/state-db.js';
import { createTransport } from '../agent/deliver/transport.js';
import type { Report } from '../shared/report.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { runServerCli } from '../server/cli.js';
import { OCSF_ACTOR_ONE_OF, OCSF_REQUIRED } from '../server/export/ocsf.js';
import { pae } from '../server/export/sign.js';
import { waitFor } from './helpers/processes.js';
import { makeTinyRoot } from './helpers/tiny-root.js';
import type { TinyRoot } from './helpers/tiny-root.js';
import { callApi } from './helpers/api.js';
import { startReceiver } from './helpers/http-receiver.js';
import type { Receiver } from './helpers/http-receiver.js';

const t0 = Date.parse('2026-11-02T00:00:00Z');
const h = (hours: number): number => t0 + hours * 3_600_000;
let clock = h(0);
const now = (): Date => new Date(clock);
const FORMULA = "=cmd|' /C calc'!A0";

let work: string;
let server: RunningServer;
let receiver: Receiver;
let tokens: { analyst: string; auditor: string };
const roots: TinyRoot[] = [];
const agents: Record<'a' | 'b', { config: Awaited<ReturnType<typeof enrollAgent>>; root: TinyRoot; state: string }> = {} as never;
const call = (method: string, route: string, token: string, body?: unknown): ReturnType<typeof callApi> => callApi(server.url, method, route, token, body);
const period = { from: new Date(h(-1)).toISOString(), to: new Date(h(12)).toISOString() };
const exportUrl = (format: string, extra = ''): string => `${server.url}/api/v1/exports?from=${period.from}&to=${period.to}&scope=image:tiny&format=${format}${extra}`;
const download = async (format: string, extra = ''): Promise<{ status: number; bytes: Buffer; headers: Headers }> => {
  const res = await fetch(exportUrl(format, extra), { headers: { authorization: `Bearer ${tokens.auditor}` } });
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()), headers: res.headers };
};

/** One report of a host as its agent sends it, at the server's clock `at`, with a watch state when given. */
async function send(which: 'a' | 'b', at: number, watch?: Report['watch']): Promise<void> {
  clock = at;
  const { config, root, state } = agents[which];
  const report = await root.scan(`host-${which}`);
  if (watch !== undefined) report.watch = watch;
  const db = openStateDb(state);
  const outbox = createOutbox(db);
  const { seq } = outbox.enqueue(report, 'full', now());
  let acked = 0;
  const transport = createTransport({ config, outbox, host: { hostname: `host-${which}` }, image: report.image, onAck: (seq) => (acked = seq) });
  transport.start();
  await waitFor('the report acked', () => acked >= seq, 15_000, 20);
  await transport.stop();
  db.close();
}

function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(cell), (cell = '');
    else if (c === '\r' && text[i + 1] === '\n') row.push(cell), rows.push(row), (row = []), (cell = ''), i++;
    else cell += c;
  }
  return rows;
}

const at = (obj: unknown, dotted: string): unknown => dotted.split('.').reduce<unknown>((o, k) => (o === null || typeof o !== 'object' ? undefined : (o as Record<string, unknown>)[k]), obj);

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'quicksand-export-'));
  receiver = await startReceiver();
  server = await startServer({ db: path.join(work, 'server.db'), port: 0, host: '127.0.0.1', now, schedules: false, deliveryIntervalMs: 50 });
  tokens = { analyst: await server.store.createApiToken('analyst', now(), 'Ana Lyst'), auditor: await server.store.createApiToken('auditor', now(), 'Q4 audit, Jane') };
  for (const which of ['a', 'b'] as const) {
    const root = makeTinyRoot();
    roots.push(root);
    agents[which] = { config: await enrollAgent(server.url, await server.store.createEnrollSecret(now()), `host-${which}`), root, state: path.join(work, `agent-${which}`) };
  }
  const admin = await server.store.createApiToken('admin', now());
  const up = await fetch(`${server.url}/api/v1/images`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: readFileSync(roots[0]!.manifest) });
  expect(up.status).toBe(201);
  expect((await call('POST', '/api/v1/sinks', admin, { type: 'webhook', id: 'soc', url: receiver.url('/hook'), secret: 'a-webhook-secret-of-16+' })).status).toBe(201);
  const ra = agents.a.root.root;
  writeFileSync(path.join(ra, 'usr/bin/hand-made'), '#!/bin/sh\n', { mode: 0o755 });
  writeFileSync(path.join(ra, 'usr/bin/temp-fix'), '#!/bin/sh\n', { mode: 0o755 });
  writeFileSync(path.join(ra, 'etc/crontab'), '0 3 * * * root /bin/true\n');
  // The formula's slash makes a folder: the changed path holds the formula exactly.
  mkdirSync(path.join(ra, `usr/bin/${FORMULA.slice(0, FORMULA.indexOf('/'))}`));
  writeFileSync(path.join(ra, `usr/bin/${FORMULA}`), 'x\n');
  writeFileSync(path.join(agents.b.root.root, 'usr/bin/b-tool'), '#!/bin/sh\n', { mode: 0o755 });

  await send('a', h(0), { state: 'ok' });
  await send('b', h(0));
  await waitFor('both triggers delivered', () => receiver.requests.length >= 2, 15_000, 20);
  clock = h(1);
  const findings = async (id: string) => (await call('GET', `/api/v1/hosts/${id}/findings`, tokens.analyst)).json.findings as Array<{ id: number; path: string }>;
  const fa = await findings(agents.a.config.agentId);
  const id = (p: string): number => fa.find((f) => f.path === p)!.id;
  const approve = async (p: string, body: object) => expect((await call('POST', `/api/v1/hosts/${agents.a.config.agentId}/findings/${id(p)}/approve`, tokens.analyst, body)).status).toBe(201);
  await approve('/usr/bin/hand-made', { reason: 'hot fix for INC-9', ticket: 'CHG-1' });
  await approve(`/usr/bin/${FORMULA}`, { reason: FORMULA, ticket: 'CHG-2' });
  await approve(`/usr/bin/${FORMULA.slice(0, FORMULA.indexOf('/'))}`, { reason: 'the folder of it', ticket: 'CHG-2' });
  await approve('/usr/bin/temp-fix', { reason: 'until the image is rebuilt', ticket: 'CHG-3', expiresAt: new Date(h(5)).toISOString() });
  expect((await call('POST', '/api/v1/rules', tokens.analyst, { schema: 'quicksand.rules/v1', rules: [{ id: 'cron-is-config', match: { path: '/etc/crontab' }, action: { type: 'suppress' } }] })).status).toBe(201);
  expect((await call('POST', `/api/v1/hosts/${agents.b.config.agentId}/rebaseline`, tokens.analyst, { reason: 'b-tool is the new standard', ticket: 'CHG-4' })).status).toBe(201);
  await waitFor('both resolves delivered', () => receiver.requests.length >= 4, 15_000, 20);
  await send('b', h(1.5));
  await send('a', h(2), { state: 'degraded', reason: 'inotify watch limit reached' });
  await send('a', h(3), { state: 'ok' });
  clock = h(6);
  expect((await server.store.triage.expireApprovals(now())).expired).toBe(1);
  await send('a', h(8), { state: 'ok' });
  clock = h(9);
  expect(await server.store.triage.markStale(new Date(clock - 2 * 3_600_000), now())).toEqual([agents.b.config.agentId]);
  await send('b', h(10));
  await send('a', h(12.5), { state: 'ok' });
  // After the period: approved again. The export says where things stood at its end (open).
  clock = h(12.6);
  await approve('/usr/bin/temp-fix', { reason: 'rebuild slipped', ticket: 'CHG-5' });
  clock = h(13);
}, 120_000);

afterAll(async () => {
  await server?.close();
  await receiver?.close();
  for (const r of roots) r.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('a compliance export of a real period', () => {
  it('holds the coverage, outages and dispositions of what was done (JSON)', async () => {
    const { status, bytes, headers } = await download('json');
    expect(status).toBe(200);
    expect(headers.get('content-disposition')).toMatch(/^attachment; filename="quicksand-export-2026-11-01-2026-11-02-image_tiny\.json"$/);
    const doc = JSON.parse(bytes.toString('utf8'));
    const a = agents.a.config.agentId;
    const b = agents.b.config.agentId;
    const of = (host: string, record: string) => doc.records.filter((r: { hostId: string; record: string }) => r.hostId === host && r.record === record);
    expect(of(a, 'coverage')).toMatchObject([{ fullScans: 4, eventScans: 0, weeklyHeld: true, controls: ['PCI DSS 11.5.2', 'NIST 800-53 SI-7', 'SOC 2 CC7.1'] }]);
    expect(of(b, 'coverage')).toMatchObject([{ fullScans: 3, weeklyHeld: true }]);
    // A's reports came at 0, 2, 3, 8 (and 12.5, after the period): stale from 5 to 8, and from 10 on.
    expect(of(a, 'outage')).toEqual([
      expect.objectContaining({ outage: 'watch-degraded', start: new Date(h(2)).toISOString(), end: new Date(h(3)).toISOString(), reason: 'inotify watch limit reached', controls: ['PCI DSS 10.7.2', 'SOC 2 CC7.1'] }),
      expect.objectContaining({ outage: 'stale', start: new Date(h(5)).toISOString(), end: new Date(h(8)).toISOString() }),
      expect.objectContaining({ outage: 'stale', start: new Date(h(10)).toISOString(), end: null }),
    ]);
    expect(of(b, 'outage')).toEqual([expect.objectContaining({ outage: 'stale', start: new Date(h(3.5)).toISOString(), end: new Date(h(10)).toISOString() })]);
    const change = (host: string, p: string) => of(host, 'change').find((r: { path: string }) => r.path === p);
    expect(change(a, '/usr/bin/hand-made')).toMatchObject({ disposition: 'approved', by: 'Ana Lyst', ticket: 'CHG-1', reason: 'hot fix for INC-9', at: new Date(h(1)).toISOString(), expiresAt: null });
    expect(change(a, '/usr/bin/temp-fix')).toMatchObject({ disposition: 'open', approvalExpiredAt: new Date(h(5)).toISOString(), ticket: 'CHG-3' });
    expect(change(a, '/etc/crontab')).toMatchObject({ disposition: 'waived', rule: 'cron-is-config' });
    expect(change(a, '/etc/crontab').controls).toContain('CIS v8 2.3');
    expect(change(b, '/usr/bin/b-tool')).toMatchObject({ disposition: 're-baselined', baselineVersion: 1, ticket: 'CHG-4', by: 'Ana Lyst' });
    expect(doc.summary).toMatchObject({ hosts: 2, scope: 'image:tiny', coverage: { weeklyHeld: 2, weeklyMissed: 0 }, outages: { stale: 3, watchDegraded: 1, ongoing: 1 }, changes: { total: 6, approved: 3, open: 1, waived: 1, 're-baselined': 1 }, openExceptions: 1 });
    expect(of(a, 'host')).toMatchObject([{ image: 'tiny', imageVersion: '1', manifestSha256: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    // Each host paged once at 0 and was cattle again at 1 (approved, waived; re-baselined).
    for (const host of [a, b]) {
      expect(of(host, 'alert')).toEqual([
        expect.objectContaining({ action: 'trigger', sink: 'soc', state: 'delivered', attempts: 1, lastAttemptResult: 'delivered (HTTP 200)', createdAt: new Date(h(0)).toISOString(), dispositionAt: new Date(h(1)).toISOString(), secondsToDisposition: 3600 }),
        expect.objectContaining({ action: 'resolve', sink: 'soc', state: 'delivered', createdAt: new Date(h(1)).toISOString() }),
      ]);
    }
    expect(doc.summary.alerts).toEqual({ total: 2, dispositioned: 2, medianSecondsToDisposition: 3600 });
  });

  it('says a host missed the weekly scan when the period runs past a week without one', async () => {
    clock = h(24 * 9);
    const res = await fetch(`${server.url}/api/v1/exports?from=${period.from}&to=${new Date(h(24 * 9)).toISOString()}&scope=host:${agents.a.config.agentId}&format=json`, { headers: { authorization: `Bearer ${tokens.auditor}` } });
    const doc = (await res.json()) as { records: Array<{ record: string }> };
    clock = h(13);
    expect(doc.records.find((r) => r.record === 'coverage')).toMatchObject({ weeklyHeld: false, fullScans: 5 });
  });

  it('streams CSV with every record and neutralises formulas', async () => {
    const json = JSON.parse((await download('json')).bytes.toString('utf8'));
    const rows = parseCsv((await download('csv')).bytes.toString('utf8'));
    expect(rows.length).toBe(json.records.length + 1);
    for (const row of rows) for (const cell of row) expect(cell).not.toMatch(/^[=+\-@\t\r]/);
    const header = rows[0]!;
    const reasons = rows.map((r) => r[header.indexOf('reason')]);
    expect(reasons).toContain(`'${FORMULA}`);
    expect(rows.map((r) => r[header.indexOf('path')])).toContain(`/usr/bin/${FORMULA}`);
  });

  it('prints an HTML report with the summary first', async () => {
    const html = (await download('html')).bytes.toString('utf8');
    expect(html.indexOf('<h2>Summary</h2>')).toBeLessThan(html.indexOf('<h2>Detail</h2>'));
    expect(html).toContain('<td>Hosts in scope</td><td>2</td>');
    expect(html).toContain('/usr/bin/=cmd|&#39; /C calc&#39;!A0');
  });

  it('renders a PDF whose text holds the summary figures and a changed path', async () => {
    const pdf = (await download('pdf')).bytes;
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    const file = path.join(work, 'export.pdf');
    writeFileSync(file, pdf);
    const text = execFileSync('pdftotext', ['-layout', file, '-'], { encoding: 'utf8' });
    expect(text).toContain('Hosts in scope: 2');
    expect(text).toMatch(/Changes: 6 \(open 1, approved 3, waived 1, re-baselined 1, resolved 0\)/);
    expect(text).toContain('/usr/bin/hand-made');
    execFileSync('pdftoppm', ['-r', '70', '-png', file, path.join(process.env.QUICKSAND_PDF_PAGES ?? work, 'export-page')]);
  });

  it('writes OCSF lines that carry each class its required attributes', async () => {
    const lines = (await download('ocsf')).bytes.toString('utf8').trim().split('\n').map((l) => JSON.parse(l));
    const classes = new Set<number>();
    for (const e of lines) {
      classes.add(e.class_uid);
      const required = OCSF_REQUIRED[e.class_uid];
      expect(required, `class ${e.class_uid}`).toBeDefined();
      for (const attr of required!) expect(at(e, attr), `${e.class_uid} ${attr}`).not.toBeUndefined();
      expect(e.type_uid).toBe(e.class_uid * 100 + e.activity_id);
      if (e.actor !== undefined) expect(OCSF_ACTOR_ONE_OF.some((k) => e.actor[k] !== undefined)).toBe(true);
      // A changed config file's finding carries the agent's masked diff: only a file activity may hold it, as a unified diff.
      if ('file_diff' in e) {
        expect(e.class_uid).toBe(1001);
        expect(e.file_diff).toMatch(/^--- (a\/|\/dev\/null)/);
      }
    }
    expect([...classes].sort()).toEqual([1001, 2003, 5020]);
  });

  it('signs every export: valid as served, and a one-byte edit, a swapped signature or another key fails', async () => {
    const pdf = await download('pdf');
    const sig = await download('pdf', '&signature=1');
    expect(sig.status).toBe(200);
    const csvSig = await download('csv', '&signature=1');
    const key = await fetch(`${server.url}/api/v1/signing-key`, { headers: { authorization: `Bearer ${tokens.auditor}` } });
    const files = { pdf: path.join(work, 'v.pdf'), sig: path.join(work, 'v.pdf.sig.json'), csvSig: path.join(work, 'csv.sig.json'), key: path.join(work, 'key.pem'), other: path.join(work, 'other.pem'), edited: path.join(work, 'edited.pdf') };
    writeFileSync(files.pdf, pdf.bytes);
    writeFileSync(files.sig, sig.bytes);
    writeFileSync(files.csvSig, csvSig.bytes);
    writeFileSync(files.key, await key.text());
    writeFileSync(files.other, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
    const edited = Buffer.from(pdf.bytes);
    edited[edited.length >> 1] = edited[edited.length >> 1]! ^ 1;
    writeFileSync(files.edited, edited);
    const verifyCli = async (...args: string[]) => {
      let out = '';
      const code = await runServerCli(['verify-export', ...args], { stdout: (t) => (out += t), stderr: (t) => (out += t), stopSignal: new Promise(() => {}) });
      return { code, out };
    };
    const ok = await verifyCli(files.pdf, '--public-key', files.key);
    expect(ok).toMatchObject({ code: 0, out: expect.stringMatching(/^valid: v\.pdf \(sha256 [0-9a-f]{64}\) is the pdf export .* scope image:tiny/) });
    expect(await verifyCli(files.edited, '--signature', files.sig, '--public-key', files.key)).toMatchObject({ code: 1, out: expect.stringContaining('the file was changed after it was signed') });
    expect(await verifyCli(files.pdf, '--signature', files.csvSig, '--public-key', files.key)).toMatchObject({ code: 1, out: expect.stringContaining('INVALID') });
    expect(await verifyCli(files.pdf, '--public-key', files.other)).toMatchObject({ code: 1, out: expect.stringContaining('not made by this public key') });
    writeFileSync(files.csvSig, '{"not":"an envelope"}');
    expect(await verifyCli(files.pdf, '--signature', files.csvSig, '--public-key', files.key)).toMatchObject({ code: 2, out: expect.stringContaining('not a DSSE envelope') });

    // The same from the command line, for a cron job: signed with the key beside the database.
    const out = path.join(work, 'cli.csv');
    let said = '';
    const io = { stdout: (t: string) => (said += t), stderr: (t: string) => (said += t), stopSignal: new Promise<void>(() => {}) };
    expect(await runServerCli(['export', '--db', path.join(work, 'server.db'), '--from', period.from, '--to', period.to, '--image', 'tiny', '--format', 'csv', '--out', out], io), said).toBe(0);
    expect((await verifyCli(out, '--db', path.join(work, 'server.db'))).code).toBe(0);
    expect(readFileSync(out, 'utf8')).toContain('/usr/bin/hand-made');

    const { json: audit } = await call('GET', '/api/v1/audit?action=export', tokens.auditor);
    expect(audit.entries.length).toBeGreaterThanOrEqual(6);
    expect(audit.entries).toContainEqual(expect.objectContaining({ action: 'export', actorName: 'Q4 audit, Jane', role: 'auditor', target: 'export:image:tiny', detail: expect.objectContaining({ format: 'pdf' }) }));
    expect(audit.entries.at(-1)).toMatchObject({ role: 'cli', detail: { format: 'csv' } });
  });

  it('attests a cattle, fresh host and refuses a stale one with the reason', async () => {
    const res = await call('GET', `/api/v1/hosts/${agents.a.config.agentId}/attestation`, tokens.auditor);
    expect(res.status).toBe(200);
    const envelope = res.json;
    const payload = Buffer.from(envelope.payload, 'base64');
    const key = await (await fetch(`${server.url}/api/v1/signing-key`, { headers: { authorization: `Bearer ${tokens.auditor}` } })).text();
    expect(verify(null, pae(envelope.payloadType, payload), key, Buffer.from(envelope.signatures[0].sig, 'base64'))).toBe(true);
    const statement = JSON.parse(payload.toString('utf8'));
    expect(statement).toMatchObject({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: `host:${agents.a.config.agentId}`, digest: { sha256: expect.stringMatching(/^[0-9a-f]{64}$/) } }],
      predicate: { matched: { image: 'tiny', version: '1', baselineVersion: null }, status: 'cattle', at: new Date(h(13)).toISOString(), lastFullScan: { receivedAt: new Date(h(12.5)).toISOString() } },
    });
    const stale = await call('GET', `/api/v1/hosts/${agents.b.config.agentId}/attestation`, tokens.auditor);
    expect(stale.status).toBe(409);
    expect(stale.json.error.message).toMatch(/cannot be attested: it is stale: no report since/);
  });
});
