// Config diffs in the store, on every backend: what an agent sends as a config file's text before
// and after comes back from the findings query as a unified diff (or a note saying why there is
// none), and the texts themselves are kept nowhere.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Finding } from '../shared/report.js';
import { REPORT_CONFIG_TEXT_BUDGET } from '../shared/config-text.js';
import { CONFIG_DIFF_MAX_CHARS } from '../server/store/config-diffs.js';
import { STORE_BACKENDS, reportFrame } from './helpers/store-backends.js';
import type { FreshStore } from './helpers/store-backends.js';

const t0 = new Date('2026-12-01T12:00:00Z');
const sha = (c: string): string => c.repeat(64);
const modified = (path: string, before: string, after: string): Finding => ({ kind: 'file-modified', severity: 'medium', path, before: sha('a'), after: sha('b'), text: { before, after } });

describe.each(STORE_BACKENDS)('config diffs in the $name store', (backend) => {
  let db: FreshStore;
  beforeEach(async () => {
    db = await backend.fresh();
  });
  afterEach(async () => {
    await db.drop();
  });

  async function ingest(findings: Finding[]) {
    const { store } = db;
    const a = (await store.enrollAgent(await store.createEnrollSecret(t0), 'web-1', t0))!;
    const [result] = await store.ingestBatch([{ type: 'report', agentId: a.agentId, frame: reportFrame(a.agentId, 1, 'full', findings, t0), receivedAt: t0 }]);
    expect(result).toMatchObject({ outcome: 'stored' });
    return (await store.listFindings(a.agentId, { state: 'open' }, t0))!;
  }

  it('answers a modified config file with the unified diff of its texts, and keeps no text', async () => {
    const before = 'Port 22\nPermitRootLogin no\nPasswordAuthentication no\n';
    const after = 'Port 22\nPermitRootLogin yes\nPasswordAuthentication no\n';
    const [f] = await ingest([modified('/etc/ssh/sshd_config', before, after)]);
    expect(f!.configDiff).toBe('--- a/etc/ssh/sshd_config\n+++ b/etc/ssh/sshd_config\n@@ -1,3 +1,3 @@\n Port 22\n-PermitRootLogin no\n+PermitRootLogin yes\n PasswordAuthentication no\n');
    expect(f!.configDiffNote).toBeUndefined();
    expect(JSON.stringify(f!.detail)).not.toContain('"text"');
  });

  it('diffs an added file against /dev/null, nested findings too, and says why a file had no text', async () => {
    const pkg: Finding = {
      kind: 'package-changed',
      severity: 'high',
      ecosystem: 'dpkg',
      name: 'login',
      before: '1',
      after: '2',
      changes: [{ kind: 'file-added', severity: 'medium', path: '/etc/login.d/new', text: { after: 'hello\n' } }],
    };
    const big: Finding = { kind: 'file-modified', severity: 'medium', path: '/etc/big.conf', text: { omitted: 'too-large', why: "no text: the host's copy is 66560 bytes, over the policy's cap of 65536 bytes per file" } };
    const found = await ingest([pkg, big]);
    const nested = (found.find((f) => f.kind === 'package-changed')!.detail as { changes: Array<{ configDiff?: string }> }).changes[0]!;
    expect(nested.configDiff).toBe('--- /dev/null\n+++ b/etc/login.d/new\n@@ -0,0 +1 @@\n+hello\n');
    const noted = found.find((f) => f.path === '/etc/big.conf')!;
    expect(noted.configDiff).toBeUndefined();
    expect(noted.configDiffNote).toBe("no text: the host's copy is 66560 bytes, over the policy's cap of 65536 bytes per file");
  });

  it('says so when only a masked value changed, and cuts a diff that is too long with a note', async () => {
    const masked = await ingest([modified('/etc/app.conf', 'password=********\n', 'password=********\n')]);
    expect(masked[0]!.configDiffNote).toBe('no diff: the texts are the same once secrets are masked: only a masked value changed');
    await db.drop();
    db = await backend.fresh();
    const lines = (f: (i: number) => string): string => Array.from({ length: 5000 }, (_, i) => `${f(i)}\n`).join('');
    const long = await ingest([modified('/etc/long.conf', lines((i) => `setting${i} = old value that is long enough`), lines((i) => (i % 10 === 0 ? `setting${i} = new` : `setting${i} = old value that is long enough`)))]);
    expect(long[0]!.configDiff!.length).toBeLessThanOrEqual(CONFIG_DIFF_MAX_CHARS);
    expect(long[0]!.configDiffNote).toMatch(/^diff cut at 131072 characters: \d+ of 500 hunks shown$/);
  });

  it('does not diff text past the report budget that an agent should have kept to', async () => {
    // Eight files of 128 KiB a side fill the budget; the ninth is over it.
    const text = 'x'.repeat(REPORT_CONFIG_TEXT_BUDGET / 16 - 2);
    const found = await ingest(Array.from({ length: 9 }, (_, i) => modified(`/etc/f${i}`, `${text}\n`, `${text}${i}\n`)));
    expect(found.filter((f) => f.configDiff !== undefined)).toHaveLength(8);
    expect(found.find((f) => f.path === '/etc/f8')!.configDiffNote).toBe(`no diff: the report carried more config text than its cap of ${REPORT_CONFIG_TEXT_BUDGET} characters`);
  });
});
