import { describe, expect, it } from 'vitest';
import { isQuicksandError } from '../shared/errors.js';
import type { Finding } from '../shared/report.js';
import { parseRuleSet, RULES_SCHEMA } from '../shared/rules.js';
import { applyRules, attentionSeverity, compileRules, decide, needsAttention, windowCovers } from './rules.js';
import type { RuleContext } from './rules.js';

const ctx = (over: Partial<RuleContext> = {}): RuleContext => ({
  host: { labels: { env: 'prod', team: 'web' } },
  image: { name: 'web-golden' },
  at: new Date('2026-11-29T03:00:00Z'), // a Sunday
  ...over,
});

const rules = (value: unknown[], windows: unknown[] = []) =>
  compileRules(parseRuleSet({ schema: RULES_SCHEMA, rules: value, maintenanceWindows: windows }, 'test rules'));

const curlAdded: Finding = {
  kind: 'package-added',
  severity: 'critical',
  ecosystem: 'dpkg',
  name: 'curl',
  after: '7.88',
  changes: [
    { kind: 'file-added', severity: 'high', path: '/usr/bin/curl', owner: { ecosystem: 'dpkg', name: 'curl' } },
    { kind: 'file-added', severity: 'critical', path: '/usr/bin/suid-helper', owner: { ecosystem: 'dpkg', name: 'curl' } },
  ],
};
const nginxConf: Finding = { kind: 'file-modified', severity: 'medium', path: '/etc/nginx/nginx.conf', owner: { ecosystem: 'dpkg', name: 'nginx-common' } };

describe('rules', () => {
  it('keeps the agent’s severity and decides nothing else when there are no rules', () => {
    const d = decide(nginxConf, ctx(), rules([]));
    expect(d).toEqual({ severity: 'medium', agentSeverity: 'medium' });
  });

  it('lets the first matching severity rule win, whatever comes after it', () => {
    const r = rules([
      { id: 'nginx-low', match: { path: '/etc/nginx' }, action: { type: 'severity', severity: 'low' } },
      { id: 'etc-high', match: { path: '/etc' }, action: { type: 'severity', severity: 'high' } },
    ]);
    expect(decide(nginxConf, ctx(), r)).toMatchObject({ severity: 'low', severityRule: 'nginx-low' });
    expect(decide({ ...nginxConf, path: '/etc/ssh/sshd_config' }, ctx(), r)).toMatchObject({ severity: 'high', severityRule: 'etc-high' });
  });

  it('applies one rule of each action type independently', () => {
    const r = rules([
      { id: 'lower', match: { package: 'nginx-*' }, action: { type: 'severity', severity: 'low' } },
      { id: 'hush-low', match: { severity: 'low' }, action: { type: 'suppress' } },
    ]);
    // The suppress rule sees the severity the first rule set, not the agent's.
    expect(decide(nginxConf, ctx(), r)).toEqual({ severity: 'low', agentSeverity: 'medium', severityRule: 'lower', suppressed: { rule: 'hush-low' } });
  });

  it('matches on kind, ecosystem, package glob, image glob and host labels together', () => {
    const r = rules([
      {
        id: 'web-prod-dpkg',
        match: { kind: ['package-added', 'package-changed'], ecosystem: 'dpkg', package: 'cur?', image: 'web-*', hostLabels: { env: 'prod' } },
        action: { type: 'suppress' },
      },
    ]);
    expect(decide(curlAdded, ctx(), r).suppressed).toEqual({ rule: 'web-prod-dpkg' });
    expect(decide(curlAdded, ctx({ host: { labels: { env: 'staging' } } }), r).suppressed).toBeUndefined();
    expect(decide(curlAdded, ctx({ host: { labels: {} } }), r).suppressed).toBeUndefined();
    expect(decide(curlAdded, ctx({ image: { name: 'db-golden' } }), r).suppressed).toBeUndefined();
    expect(decide({ ...curlAdded, name: 'curlx' }, ctx(), r).suppressed).toBeUndefined();
    expect(decide({ ...curlAdded, kind: 'package-removed' }, ctx(), r).suppressed).toBeUndefined();
  });

  it('matches a file finding’s owner package with the package glob, and npm scoped names', () => {
    const r = rules([{ id: 'nginx', match: { package: 'nginx*' }, action: { type: 'suppress' } }, { id: 'scoped', match: { package: '@acme/*' }, action: { type: 'suppress' } }]);
    expect(decide(nginxConf, ctx(), r).suppressed).toEqual({ rule: 'nginx' });
    expect(decide({ kind: 'package-added', severity: 'high', ecosystem: 'npm', name: '@acme/cli' }, ctx(), r).suppressed).toEqual({ rule: 'scoped' });
    expect(decide({ kind: 'file-added', severity: 'low', path: '/opt/x' }, ctx(), r).suppressed).toBeUndefined();
  });

  it('auto-approves inside a declared maintenance window only when the change carries a ticket', () => {
    const r = rules(
      [{ id: 'mw', match: { kind: ['package-added', 'package-changed'] }, action: { type: 'auto-approve', ticket: 'CHG-*' } }],
      [{ id: 'sunday-night', weekly: { days: ['sat'], from: '22:00', to: '04:00' }, match: { hostLabels: { env: 'prod' } } }],
    );
    expect(decide(curlAdded, ctx({ ticket: 'CHG-1042' }), r).autoApproved).toEqual({ rule: 'mw', ticket: 'CHG-1042', window: 'sunday-night' });
    expect(decide(curlAdded, ctx(), r).autoApproved).toBeUndefined(); // no ticket
    expect(decide(curlAdded, ctx({ ticket: 'INC-7' }), r).autoApproved).toBeUndefined(); // not a change ticket
    expect(decide(curlAdded, ctx({ ticket: 'CHG-1042', at: new Date('2026-11-29T05:00:00Z') }), r).autoApproved).toBeUndefined(); // after the window
    expect(decide(curlAdded, ctx({ ticket: 'CHG-1042', host: { labels: { env: 'dev' } } }), r).autoApproved).toBeUndefined(); // window not for this host
  });

  it('takes the ticket a window was declared under for the changes inside it', () => {
    const r = rules(
      [{ id: 'mw', action: { type: 'auto-approve', ticket: 'CHG-*' } }],
      [{ id: 'chg-1042', ticket: 'CHG-1042', start: '2026-11-29T02:00:00Z', end: '2026-11-29T04:00:00Z', match: { image: 'web-*' } }],
    );
    expect(decide(nginxConf, ctx(), r).autoApproved).toEqual({ rule: 'mw', ticket: 'CHG-1042', window: 'chg-1042' });
    expect(decide(nginxConf, ctx({ at: new Date('2026-11-29T04:00:00Z') }), r).autoApproved).toBeUndefined();
    // A change's own ticket is the one on record.
    expect(decide(nginxConf, ctx({ ticket: 'CHG-7' }), r).autoApproved).toMatchObject({ ticket: 'CHG-7' });
  });

  it('auto-approves outside any window when the rule says the window is not needed', () => {
    const r = rules([{ id: 'any', action: { type: 'auto-approve', inMaintenanceWindow: false } }]);
    expect(decide(nginxConf, ctx({ ticket: 'T-1' }), r).autoApproved).toEqual({ rule: 'any', ticket: 'T-1' });
    expect(decide(nginxConf, ctx({ ticket: '  ' }), r).autoApproved).toBeUndefined();
  });

  it('carries a package’s suppression and approval to its files, not its severity', () => {
    const r = rules([
      { id: 'pkgs-low', match: { kind: 'package-added' }, action: { type: 'severity', severity: 'low' } },
      { id: 'curl-ok', match: { kind: 'package-added', package: 'curl' }, action: { type: 'suppress' } },
    ]);
    const [e] = applyRules([curlAdded], ctx(), r);
    expect(e!.decision).toMatchObject({ severity: 'low', suppressed: { rule: 'curl-ok' } });
    expect(e!.changes!.map((c) => [c.finding.path, c.decision.severity, c.decision.suppressed?.rule])).toEqual([
      ['/usr/bin/curl', 'high', 'curl-ok'],
      ['/usr/bin/suid-helper', 'critical', 'curl-ok'],
    ]);
    expect(needsAttention(e!)).toBe(false);
  });

  it('still needs attention for a nested finding no rule covered', () => {
    const r = rules([{ id: 'pkg-only', match: { kind: 'package-added', severity: 'low' }, action: { type: 'suppress' } }, { id: 'low', match: { kind: 'package-added' }, action: { type: 'severity', severity: 'low' } }]);
    const [e] = applyRules([{ ...curlAdded, changes: [] }], ctx(), r);
    expect(needsAttention(e!)).toBe(false);
    const [withFiles] = applyRules([{ ...curlAdded, changes: [{ ...curlAdded.changes![1]!, owner: undefined }] }], ctx(), rules([{ id: 'p', match: { kind: 'package-added' }, action: { type: 'severity', severity: 'info' } }]));
    expect(needsAttention(withFiles!)).toBe(true);
    expect(attentionSeverity(withFiles!)).toBe('critical');
  });

  it('never alerts info findings and honours a minimum severity', () => {
    const [info] = applyRules([{ kind: 'file-modified', severity: 'info', path: '/etc/hostname' }], ctx(), rules([]));
    expect(needsAttention(info!)).toBe(false);
    const [medium] = applyRules([nginxConf], ctx(), rules([]));
    expect(needsAttention(medium!, 'low')).toBe(true);
    expect(needsAttention(medium!, 'high')).toBe(false);
  });

  it('covers absolute windows half-open and weekly windows across midnight', () => {
    const abs = { id: 'a', start: '2026-11-29T02:00:00Z', end: '2026-11-29T04:00:00Z', match: {} };
    expect(windowCovers(abs, new Date('2026-11-29T02:00:00Z'))).toBe(true);
    expect(windowCovers(abs, new Date('2026-11-29T04:00:00Z'))).toBe(false);
    const weekly = { id: 'w', weekly: { days: ['fri' as const], from: '23:00', to: '01:00' }, match: {} };
    expect(windowCovers(weekly, new Date('2026-11-27T23:30:00Z'))).toBe(true); // Friday night
    expect(windowCovers(weekly, new Date('2026-11-28T00:30:00Z'))).toBe(true); // Saturday early
    expect(windowCovers(weekly, new Date('2026-11-28T23:30:00Z'))).toBe(false); // Saturday night
  });

  it('rejects a bad rule set with the path of the bad field', () => {
    const bad = (value: unknown): string => {
      try {
        parseRuleSet(value, 'rules upload');
      } catch (err) {
        expect(isQuicksandError(err) && err.code).toBe('RULES_INVALID');
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(bad({ schema: RULES_SCHEMA, rules: [{ id: 'x', match: { path: 'etc' }, action: { type: 'suppress' } }] })).toContain('rules[0].match.path');
    expect(bad({ schema: RULES_SCHEMA, rules: [{ id: 'x', action: { type: 'severity', severity: 'urgent' } }] })).toContain('rules[0].action.severity');
    expect(bad({ schema: RULES_SCHEMA, rules: [{ id: 'x', action: { type: 'suppress' } }, { id: 'x', action: { type: 'suppress' } }] })).toContain('rules[1].id: "x" is used twice');
    expect(bad({ schema: RULES_SCHEMA, maintenanceWindows: [{ id: 'w', weekly: { days: ['sun'], from: '25:00', to: '01:00' } }] })).toContain('maintenanceWindows[0].weekly.from');
    expect(bad({ schema: RULES_SCHEMA, maintenanceWindows: [{ id: 'w' }] })).toContain('give either start and end, or weekly');
  });
});
