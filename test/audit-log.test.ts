// The audit log holds every act, from the API and from the server's command line, names who did
// it, and pages from the newest entry back. A real server process on a SQLite file on loopback;
// the CLI writes to that same file while it runs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry, AuditPage } from '../shared/api.js';
import { callApi } from './helpers/api.js';
import { freePort, killAll, runCliAsync, startChild, waitFor } from './helpers/processes.js';
import type { Child } from './helpers/processes.js';

let dir: string;
let db: string;
let server: Child;
let url: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'quicksand-audit-'));
  db = path.join(dir, 'server.db');
  const port = await freePort();
  server = startChild('server', ['start', '--db', db, '--port', String(port)]);
  await waitFor('the server to listen', () => server.output().includes('listening on'), 30_000, 50);
  url = `http://127.0.0.1:${port}`;
}, 60_000);
afterAll(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

async function cli(...args: string[]): Promise<string> {
  const r = await runCliAsync('server', [...args, '--db', db]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

describe('the audit log', () => {
  let admin: string;
  let auditor: string;

  it('records the command line’s acts with the OS user, and names each token’s actor', async () => {
    admin = await cli('token', 'create', '--role', 'admin', '--name', 'Ops on call, Sam');
    auditor = await cli('token', 'create', '--role', 'auditor', '--name', 'Q3 audit, Jane');
    const secret = await cli('enroll-secret');
    const enrolled = await fetch(`${url}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secret, hostname: 'gone-1' }) });
    const { agentId } = (await enrolled.json()) as { agentId: string };
    const other = await fetch(`${url}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secret, hostname: 'gone-2' }) });
    const { agentId: otherId } = (await other.json()) as { agentId: string };
    await cli('agent', 'revoke', agentId);
    // The same act through the API names the token's holder.
    expect((await callApi(url, 'DELETE', `/api/v1/agents/${otherId}`, admin)).status).toBe(200);

    const { status, json } = await callApi(url, 'GET', '/api/v1/audit', auditor);
    expect(status).toBe(200);
    const user = userInfo().username;
    const tokenId = (t: string): string => t.split('.')[1]!;
    expect((json as AuditPage).entries.map((e: AuditEntry) => [e.action, e.actor, e.actorName, e.role, e.target])).toEqual([
      ['token-create', `cli:${user}`, user, 'cli', `token:${tokenId(admin)}`],
      ['token-create', `cli:${user}`, user, 'cli', `token:${tokenId(auditor)}`],
      ['enroll-secret-create', `cli:${user}`, user, 'cli', `enroll-secret:${tokenId(secret)}`],
      ['agent-revoke', `cli:${user}`, user, 'cli', `host:${agentId}`],
      ['agent-revoke', tokenId(admin), 'Ops on call, Sam', 'admin', `host:${otherId}`],
    ]);
    // What the token was made for is in the entry, never the token itself.
    expect((json as AuditPage).entries[1]!.detail).toEqual({ role: 'auditor', name: 'Q3 audit, Jane' });
    expect(JSON.stringify(json)).not.toContain(auditor.split('.')[2]!);
  }, 60_000);

  it('returns the newest entries for ?limit, with a cursor to the older ones', async () => {
    for (let i = 0; i < 3; i++) await cli('enroll-secret');
    const all = ((await callApi(url, 'GET', '/api/v1/audit', auditor)).json as AuditPage);
    expect(all.entries).toHaveLength(8);
    expect(all.older).toBeNull();
    const ids = all.entries.map((e) => e.id);

    const pages: number[][] = [];
    let route = '/api/v1/audit?limit=3';
    for (;;) {
      const page = (await callApi(url, 'GET', route, auditor)).json as AuditPage;
      pages.push(page.entries.map((e) => e.id));
      if (page.older === null) break;
      route = `/api/v1/audit?limit=3&before=${page.older}`;
    }
    // Newest page first, each page oldest first: together, the whole log once.
    expect(pages).toEqual([ids.slice(5), ids.slice(2, 5), ids.slice(0, 2)]);
    expect((await callApi(url, 'GET', '/api/v1/audit?limit=1&action=token-create', auditor)).json).toMatchObject({ entries: [{ target: `token:${auditor.split('.')[1]}` }] });
    expect((await callApi(url, 'GET', '/api/v1/audit?before=0', auditor)).status).toBe(400);
  }, 60_000);
});
