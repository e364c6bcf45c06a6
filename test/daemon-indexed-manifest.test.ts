// The real `quicksand-agent run` (a child process, enrolled, connected, watching a copy of the
// debootstrap minbase) reads the records an event batch compares from its state database, not
// from a manifest in its heap: a dropped file and an edited package binary still reach the server
// from an event report with the right findings, and the index is in the state database.
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeAgentConfig } from '../agent/deliver/config.js';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { STATE_DB_NAME } from '../agent/state-db.js';
import type { HostDetail, HostFinding } from '../shared/api.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { callApi } from './helpers/api.js';
import { copyTree, ensureMinbase } from './helpers/debian-root.js';
import { killAll, runCliAsync, startChild, waitFor } from './helpers/processes.js';

let tree: { dir: string; remove: () => void };
let work: string;
let server: RunningServer;
let auditor: string;
let hostId: string;
let state: string;
let imageFile: string;

beforeAll(async () => {
  tree = copyTree(ensureMinbase());
  work = mkdtempSync(path.join(tmpdir(), 'quicksand-indexed-'));
  state = path.join(work, 'agent-state');
  imageFile = path.join(work, 'image.json.gz');
  const built = await runCliAsync('agent', ['manifest', '--root', tree.dir, '--name', 'debian-minbase', '--image-version', '1', '--out', imageFile, '--state', state, '-q']);
  expect(built.code, built.stderr).toBe(0);
  server = await startServer({ db: path.join(work, 'server.db'), port: 0, host: '127.0.0.1' });
  auditor = await server.store.createApiToken('auditor', new Date());
  const config = await enrollAgent(server.url, await server.store.createEnrollSecret(new Date()), 'indexed-host');
  hostId = config.agentId;
  await writeAgentConfig(path.join(state, 'agent.json'), config);
}, 120_000);
afterAll(async () => {
  killAll();
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
  tree?.remove();
});

describe('the daemon with its manifest indexed in the state database', () => {
  it('reports a dropped file and an edited package binary from an event batch', async () => {
    const agent = startChild('agent', ['run', '--root', tree.dir, '--manifest', imageFile, '--state', state, '--schedule', '0 0 1 1 *', '--reconnect-max', '1']);
    await waitFor('the start-up full scan', () => /full scan: clean/.test(agent.output()), 90_000);
    const db = new Database(path.join(state, STATE_DB_NAME), { readonly: true });
    const records = db.prepare('SELECT count(*) FROM manifest_records').pluck().get() as number;
    db.close();
    expect(records).toBeGreaterThan(5000);

    writeFileSync(path.join(tree.dir, 'usr/bin/dropped'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    appendFileSync(path.join(tree.dir, 'usr/bin/ls'), 'x');
    await waitFor('the event report', () => /event scan: drift/.test(agent.output()), 60_000);
    const findings = await waitFor('both findings on the server', async () => {
      const res = await callApi(server.url, 'GET', `/api/v1/hosts/${hostId}/findings`, auditor);
      const list = res.json.findings as HostFinding[];
      return list.length >= 2 && list;
    }, 30_000);
    expect(findings.map((f) => [f.kind, f.path, f.severity]).sort()).toEqual([
      ['file-added', '/usr/bin/dropped', 'high'],
      ['file-modified', '/usr/bin/ls', 'critical'],
    ]);
    const host = (await callApi(server.url, 'GET', `/api/v1/hosts/${hostId}`, auditor)).json as HostDetail;
    expect(host.reports).toBeGreaterThanOrEqual(2);
  }, 180_000);
});
