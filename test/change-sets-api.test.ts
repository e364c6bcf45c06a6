// What the API says about a host's drift and its causes, on every store backend (a real SQLite
// file, …): the counts, the change sets (package manager runs) with their command, and the error
// code of a bad body.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChangeSetDetail, ChangeSetSummary, HostDetail, HostFinding } from '../shared/api.js';
import { REPORT_SCHEMA, summarize } from '../shared/report.js';
import type { ChangeSetInfo, Finding } from '../shared/report.js';
import { createApp } from '../server/api/app.js';
import { createMetrics } from '../server/metrics.js';
import type { Store } from '../server/store/types.js';
import { STORE_BACKENDS } from './helpers/store-backends.js';
import type { FreshStore } from './helpers/store-backends.js';

describe.each(STORE_BACKENDS)('on the $name store', (backend) => {
  let db: FreshStore;
  let store: Store;
  let app: ReturnType<typeof createApp>;
  let hostId: string;
  let analyst: string;
  const now = new Date('2026-11-29T12:00:00Z');

  beforeEach(async () => {
    db = await backend.fresh();
    store = db.store;
    app = createApp({ store, clock: () => now, metrics: createMetrics() });
    hostId = (await store.enrollAgent(await store.createEnrollSecret(now), 'web-7', now))!.agentId;
    analyst = await store.createApiToken('analyst', now);
  });
  afterEach(async () => {
    await db.drop();
  });

  const APT: ChangeSetInfo = { id: 'apt:2026-11-29T11:58:01', tool: 'apt', start: '2026-11-29T11:58:01', end: '2026-11-29T11:58:04', command: 'apt-get install sl tree', user: 'root', packages: 2 };
  const pkg = (name: string, files: string[]): Finding => ({
    kind: 'package-added',
    severity: 'medium',
    ecosystem: 'dpkg',
    name,
    after: '1.0',
    changeSet: APT.id,
    changes: files.map((p) => ({ kind: 'file-added' as const, severity: 'medium' as const, path: p, owner: { ecosystem: 'dpkg' as const, name }, changeSet: APT.id })),
  });

  async function report(findings: Finding[], changeSets: ChangeSetInfo[], event?: { seq: number; scope: { paths: string[]; subtrees: string[]; packages: boolean } }): Promise<void> {
    const seq = event?.seq ?? 1;
    await store.ingestBatch([
      {
        type: 'report',
        agentId: hostId,
        receivedAt: now,
        frame: {
          type: 'report',
          agentId: hostId,
          seq,
          prevHash: seq === 1 ? null : String(seq - 1).repeat(64).slice(0, 64),
          hash: String(seq).repeat(64).slice(0, 64),
          kind: event === undefined ? 'full' : 'event',
          report: {
            schema: REPORT_SCHEMA,
            ...(event === undefined ? {} : { scan: 'event' as const, scope: event.scope }),
            image: { name: 'web', version: '42' },
            host: { hostname: 'web-7', root: '/' },
            scannedAt: now.toISOString(),
            summary: summarize(findings),
            stats: { files: 1, packages: 1, bytesHashed: 0, durationMs: 1 },
            findings,
            changeSets,
            warnings: [],
          },
        },
      },
    ]);
  }

  async function call<T>(method: string, route: string, body?: unknown): Promise<{ status: number; json: T }> {
    const res = await app.request(route, {
      method,
      headers: { authorization: `Bearer ${analyst}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    return { status: res.status, json: (await res.json()) as T };
  }

  describe('a host\'s change sets', () => {
    beforeEach(async () => {
      await report([pkg('sl', ['/usr/games/sl', '/usr/share/doc/sl/copyright']), pkg('tree', ['/usr/bin/tree']), { kind: 'file-added', severity: 'high', path: '/usr/local/bin/loose', after: 'c'.repeat(64) }], [APT]);
    });

    it('are listed with the command, the tool, the time and the packages, and one shows the paths it brought', async () => {
      const list = await call<{ changeSets: ChangeSetSummary[] }>('GET', `/api/v1/hosts/${hostId}/change-sets`);
      expect(list.status).toBe(200);
      expect(list.json.changeSets).toEqual([
        {
          id: APT.id,
          tool: 'apt',
          command: 'apt-get install sl tree',
          user: 'root',
          start: APT.start,
          end: APT.end,
          ticket: null,
          firstSeen: now.toISOString(),
          packages: [
            { kind: 'package-added', ecosystem: 'dpkg', name: 'sl', before: null, after: '1.0', resolved: false },
            { kind: 'package-added', ecosystem: 'dpkg', name: 'tree', before: null, after: '1.0', resolved: false },
          ],
          paths: 3,
        },
      ]);
      const one = await call<ChangeSetDetail>('GET', `/api/v1/hosts/${hostId}/change-sets/${encodeURIComponent(APT.id)}`);
      expect(one.json.paths).toEqual(['/usr/bin/tree', '/usr/games/sl', '/usr/share/doc/sl/copyright']);
      expect((await call('GET', `/api/v1/hosts/${hostId}/change-sets/apt:never`)).status).toBe(404);
      expect((await call('GET', '/api/v1/hosts/nobody/change-sets')).status).toBe(404);
    });

    it('name their command on the findings they explain', async () => {
      const { json } = await call<{ findings: HostFinding[] }>('GET', `/api/v1/hosts/${hostId}/findings`);
      const by = Object.fromEntries(json.findings.map((f) => [f.name ?? f.path, f.changeSet]));
      expect(by).toEqual({ sl: { id: APT.id, tool: 'apt', command: 'apt-get install sl tree' }, tree: { id: APT.id, tool: 'apt', command: 'apt-get install sl tree' }, '/usr/local/bin/loose': null });
    });
  });

  describe('an event report that meets a package change', () => {
    it('resolves the loose findings of the paths it now lists under the package', async () => {
      // Written by dpkg before its database said whose they are: loose, unowned.
      const early = ['/usr/share/doc/tree/README.gz', '/usr/share/doc/tree/copyright'];
      await report([{ kind: 'file-added', severity: 'high', path: '/usr/local/bin/implant', after: 'c'.repeat(64) }], []);
      await report(early.map((p) => ({ kind: 'file-added' as const, severity: 'medium' as const, path: p, after: 'e'.repeat(64) })), [], { seq: 2, scope: { paths: early, subtrees: [], packages: false } });
      const open = async () => (await call<{ findings: HostFinding[] }>('GET', `/api/v1/hosts/${hostId}/findings`)).json.findings.map((f) => f.name ?? f.path).sort();
      expect(await open()).toEqual(['/usr/local/bin/implant', ...early]);
      // The database now names tree; the batch that read it covers only the files written since.
      await report([pkg('tree', ['/usr/bin/tree', ...early])], [APT], { seq: 3, scope: { paths: ['/usr/bin/tree'], subtrees: [], packages: true } });
      expect(await open()).toEqual(['/usr/local/bin/implant', 'tree']);
    });
  });

  describe('a host\'s counts', () => {
    it('count what openFindings counts: an approved finding leaves both', async () => {
      await report([{ kind: 'file-added', severity: 'high', path: '/usr/local/bin/a', after: 'c'.repeat(64) }, { kind: 'file-modified', severity: 'medium', path: '/etc/issue', after: 'd'.repeat(64) }], []);
      const before = (await call<HostDetail>('GET', `/api/v1/hosts/${hostId}`)).json;
      expect([before.openFindings, before.counts.high, before.counts.medium]).toEqual([2, 1, 1]);
      const a = (await call<{ findings: HostFinding[] }>('GET', `/api/v1/hosts/${hostId}/findings`)).json.findings.find((f) => f.path === '/usr/local/bin/a')!;
      expect((await call('POST', `/api/v1/hosts/${hostId}/findings/${a.id}/approve`, { reason: 'ours' })).status).toBe(201);
      const after = (await call<HostDetail>('GET', `/api/v1/hosts/${hostId}`)).json;
      expect([after.openFindings, after.counts.high, after.counts.medium]).toEqual([1, 0, 1]);
      expect(after.openFindings).toBe(after.counts.critical + after.counts.high + after.counts.medium + after.counts.low);
    });
  });

  describe('a request body that is wrong', () => {
    it('gets BODY_INVALID, not QUERY_INVALID, naming the field', async () => {
      await report([{ kind: 'file-added', severity: 'high', path: '/usr/local/bin/a', after: 'c'.repeat(64) }], []);
      const bad = await call<{ error: { code: string; message: string } }>('POST', `/api/v1/hosts/${hostId}/findings/1/approve`, { reason: '' });
      expect(bad.status).toBe(400);
      expect(bad.json.error).toMatchObject({ code: 'BODY_INVALID', message: expect.stringMatching(/^body: reason: a reason is required/) });
      const notJson = await call<{ error: { code: string } }>('POST', `/api/v1/hosts/${hostId}/rebaseline`, '{oops');
      expect(notJson.json.error.code).toBe('BODY_INVALID');
      // A query string keeps its own code.
      expect((await call<{ error: { code: string } }>('GET', '/api/v1/hosts?status=lost')).json.error.code).toBe('QUERY_INVALID');
    });
  });
});
