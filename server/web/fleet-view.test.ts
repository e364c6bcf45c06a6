import { describe, expect, it } from 'vitest';
import type { HostSummary } from '../../shared/api.js';
import { FLEET_CSV_HEADER, csvCell, filtersQuery, fleetCsvLines, pageOf, parseFleetFilters, petTrend, trendPoints, trendStart, withPetShare } from './fleet-view.js';
import { diffLines, groupByChangeSet, visible } from './host-view.js';
import type { HostFinding } from '../../shared/api.js';

const host = (id: string, over: Partial<HostSummary> = {}): HostSummary => ({
  id, hostname: `h-${id}`, machineId: null, displayName: `h-${id}`, status: 'cattle', image: { name: 'web', version: '1' }, openFindings: 0, driftScore: 0,
  petSince: null, lastSeen: null, lastReportAt: null, revoked: false, watch: null, labels: {}, ...over,
});

describe('the fleet filters', () => {
  it('parse from the URL, empty fields being no filter, and name a bad field', () => {
    expect(parseFleetFilters({ status: 'pet', image: '', page: '2' })).toEqual({ filters: { status: 'pet', page: 2 } });
    expect(parseFleetFilters({ status: 'goat' })).toMatchObject({ error: expect.stringMatching(/^status: /) });
    expect(parseFleetFilters({ colour: 'red' })).toMatchObject({ error: expect.stringMatching(/colour/) });
    expect(filtersQuery({ status: 'pet', page: 1 }, { page: '3' })).toBe('?status=pet&page=3');
  });

  it('say where a page starts, clamping past the end', () => {
    expect(pageOf(120, 3)).toEqual({ page: 3, pages: 3, offset: 100 });
    expect(pageOf(120, 9)).toEqual({ page: 3, pages: 3, offset: 100 });
    expect(pageOf(0, 1)).toEqual({ page: 1, pages: 1, offset: 0 });
  });

  it('give each cohort its pet share', () => {
    expect(withPetShare([{ image: 'web', version: '1', hosts: 4, pets: 1 }, { image: 'db', version: '7', hosts: 1, pets: 0 }])).toEqual([
      { image: 'web', version: '1', hosts: 4, pets: 1, petShare: 0.25 },
      { image: 'db', version: '7', hosts: 1, pets: 0, petShare: 0 },
    ]);
  });
});

describe('the fleet CSV', () => {
  it('neutralises cells a spreadsheet would run, and quotes as RFC 4180 says', () => {
    expect(['=1+1', '+x', '-x', '@SUM(A1)', '\tx', 'plain', 'a,b', 'say "hi"', null, 3].map(csvCell)).toEqual([
      `"'=1+1"`, `"'+x"`, `"'-x"`, `"'@SUM(A1)"`, `"'\tx"`, 'plain', '"a,b"', '"say ""hi"""', '', '3',
    ]);
    const csv = FLEET_CSV_HEADER + fleetCsvLines([host('a', { hostname: '=cmd|calc', labels: { env: 'prod' } })]);
    expect(csv.split('\r\n')).toEqual(['id,hostname,status,image,version,open_findings,drift_score,pet_since,last_report_at,watch,labels', `a,"'=cmd|calc",cattle,web,1,0,0,,,,env=prod`, '']);
  });
});

describe('the trend of pets', () => {
  it('counts at the end of each day the pets now less what changed after that day', () => {
    const now = new Date('2026-12-03T12:00:00Z');
    expect(trendStart(now, 4).toISOString()).toBe('2026-11-30T00:00:00.000Z');
    // Two pets now; on 12-02 one became a pet and another stopped being one on 12-03.
    const trend = petTrend(2, [{ day: '2026-12-01', delta: 1 }, { day: '2026-12-02', delta: 2 }, { day: '2026-12-03', delta: -1 }], now, 4);
    expect(trend).toEqual([{ day: '2026-11-30', pets: 0 }, { day: '2026-12-01', pets: 1 }, { day: '2026-12-02', pets: 3 }, { day: '2026-12-03', pets: 2 }]);
    const steps = petTrend(2, [{ day: '2026-12-01', delta: 1 }, { day: '2026-12-03', delta: 1 }], now, 4);
    expect(trendPoints(steps, 300, 80)).toBe('0.0,80.0 100.0,40.0 200.0,40.0 300.0,0.0');
  });
});

describe('the host view', () => {
  const finding = (id: number, cs: string | null): HostFinding => ({ id, kind: 'package-added', severity: 'high', source: 'scan', ecosystem: 'dpkg', name: `p${id}`, path: null, firstSeen: '', lastSeen: '', resolvedAt: null, triage: { state: 'open', approval: null, waiver: null }, attack: null, actor: null, changeSet: cs === null ? null : { id: cs, tool: 'apt', command: 'apt-get install x' }, detail: {} });
  it('groups findings by change set, the unexplained last', () => {
    expect(groupByChangeSet([finding(1, null), finding(2, 'apt:1'), finding(3, 'apt:1')]).map((g) => [g.id, g.findings.map((f) => f.id)])).toEqual([['apt:1', [2, 3]], [null, [1]]]);
  });
  it('classifies diff lines and makes control characters visible', () => {
    expect(diffLines('--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n c').map((l) => l.kind)).toEqual(['file', 'file', 'hunk', 'del', 'add', 'ctx']);
    expect(visible('a\u001b[31mb\u202ec\tok')).toBe('a\\u{1b}[31mb\\u{202e}c\tok');
  });
});
