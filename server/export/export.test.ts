// The pure pieces of the export: CSV cells, DSSE's PAE, scopes, OCSF's file_diff, dispositions.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { csvField } from './csv.js';
import { changeRecord } from './model.js';
import type { ExportRequest } from './model.js';
import { ocsfEvent, OCSF_REQUIRED } from './ocsf.js';
import { parseScope } from './produce.js';
import { SIGNING_KEY_FILE, loadOrCreateSigningKey, pae } from './sign.js';
import type { ExportApprovalRow, ExportFindingRow, ExportHostRow } from '../store/types.js';

const host: ExportHostRow = { id: 'qsa-1', hostname: 'web-1', machineId: null, enrolledAt: '2026-11-01T00:00:00.000Z', revokedAt: null, image: { name: 'web', version: '42' }, baselineVersion: null, labels: {}, status: 'pet', lastReportAt: null, watch: null };
const finding: ExportFindingRow = { id: 7, hostId: 'qsa-1', kind: 'file-modified', severity: 'medium', source: 'scan', ecosystem: null, name: null, path: '/etc/ssh/sshd_config', firstSeen: '2026-11-02T00:00:00.000Z', lastSeen: '2026-11-02T00:00:00.000Z', resolvedAt: null, waived: false, decision: null, ticket: null, changeSet: null, identity: 'id-1', detail: {} };
const req: ExportRequest = { from: new Date('2026-11-01T00:00:00Z'), to: new Date('2026-11-30T00:00:00Z'), scope: { kind: 'all' }, now: new Date('2026-12-01T00:00:00Z'), staleAfterMs: 7_200_000 };
const approval = (over: Partial<ExportApprovalRow>): ExportApprovalRow => ({ id: 1, findingId: 7, identity: 'id-1', kind: 'finding', reason: 'planned', ticket: 'CHG-1', expiresAt: null, createdAt: '2026-11-03T00:00:00.000Z', createdBy: 'tok', createdByName: null, reopenedAt: null, reopenedBy: null, expiredAt: null, baselineVersion: null, ...over });

describe('the export', () => {
  it('neutralises every cell a spreadsheet would run as a formula, and quotes per RFC 4180', () => {
    expect(csvField("=cmd|' /C calc'!A0")).toBe("'=cmd|' /C calc'!A0");
    for (const c of ['+', '-', '@', '\t', '\r']) expect(csvField(`${c}1`).replace(/^"/, '')).toMatch(/^'/);
    expect(csvField('a,"b"')).toBe('"a,""b"""');
    expect(csvField('/etc/passwd')).toBe('/etc/passwd');
  });

  it('encodes PAE exactly as the DSSE spec example', () => {
    expect(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe('DSSEv1 29 http://example.com/HelloWorld 11 hello world');
    expect(pae('t', Buffer.from('ü')).toString()).toBe('DSSEv1 1 t 2 ü');
  });

  it('makes the signing key once, readable by its owner only, and keeps it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'quicksand-key-'));
    try {
      const first = loadOrCreateSigningKey(path.join(dir, 'data'));
      expect(statSync(path.join(dir, 'data', SIGNING_KEY_FILE)).mode & 0o777).toBe(0o600);
      expect(loadOrCreateSigningKey(path.join(dir, 'data')).keyid).toBe(first.keyid);
      expect(first.publicPem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('parses scopes and names what is wrong', () => {
    expect(parseScope('label:env=prod')).toEqual({ kind: 'label', key: 'env', value: 'prod' });
    expect(parseScope('image:web')).toEqual({ kind: 'image', name: 'web' });
    expect(() => parseScope('label:"x=1')).toThrow(/label:KEY=VALUE/);
    expect(() => parseScope('team:x')).toThrow(/expected all, image:NAME/);
  });

  it('judges an approval at the end of the period: made after it, reopened after it, expired in it', () => {
    expect(changeRecord(host, finding, [approval({})], req)).toMatchObject({ disposition: 'approved', ticket: 'CHG-1', by: 'tok' });
    expect(changeRecord(host, finding, [approval({ createdAt: '2026-11-30T00:00:01.000Z' })], req).disposition).toBe('open');
    expect(changeRecord(host, finding, [approval({ reopenedAt: '2026-11-30T12:00:00.000Z' })], req).disposition).toBe('approved');
    expect(changeRecord(host, finding, [approval({ identity: 'an earlier state' })], req).disposition).toBe('open');
    expect(changeRecord(host, finding, [approval({ expiresAt: '2026-11-10T00:00:00.000Z' })], req)).toMatchObject({ disposition: 'open', approvalExpiredAt: '2026-11-10T00:00:00.000Z' });
    expect(changeRecord(host, finding, [approval({ kind: 'rebaseline', baselineVersion: 3 })], req)).toMatchObject({ disposition: 're-baselined', baselineVersion: 3 });
    expect(changeRecord(host, { ...finding, resolvedAt: '2026-11-04T00:00:00.000Z' }, [], req).disposition).toBe('resolved');
  });

  it('puts a config diff into file_diff of the File System Activity, and none where the finding has none', () => {
    const diff = '--- a/etc/ssh/sshd_config\n+++ b/etc/ssh/sshd_config\n@@ -1 +1 @@\n-PermitRootLogin no\n+PermitRootLogin yes\n';
    const e = ocsfEvent(changeRecord(host, { ...finding, detail: { configDiff: diff } }, [], req), req.now.toISOString());
    expect(e).toMatchObject({ class_uid: 1001, activity_id: 3, type_uid: 100103, file_diff: diff, file: { name: 'sshd_config', path: '/etc/ssh/sshd_config', type_id: 1 } });
    expect(OCSF_REQUIRED[1001]!.every((a) => a.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], e) !== undefined)).toBe(true);
    expect('file_diff' in ocsfEvent(changeRecord(host, { ...finding, detail: { configDiff: 42 } }, [], req), req.now.toISOString())).toBe(false);
  });
});
