import { describe, expect, it } from 'vitest';
import type { Finding } from '../../shared/report.js';
import { emptyRuleSet, parseRuleSet, RULES_SCHEMA } from '../../shared/rules.js';
import { parseAlertSink } from '../../shared/alerts.js';
import { applyRules, compileRules } from '../rules.js';
import type { CompiledRules } from '../rules.js';
import { DEFAULT_ALERT_POLICY, emptyHostAlertMemory, nextRetryDelay, planAlerts, sinksFor } from './policy.js';
import type { AlertPolicy, HostAlertMemory } from './policy.js';
import { buildPagerdutyEvent } from './pagerduty.js';
import { buildSlackPayload } from './slack.js';
import { settleAttempt } from './queue.js';

const host = { id: 'h-1', hostname: 'web-7', labels: { env: 'prod', team: 'web' } };
const image = { name: 'web-golden', version: '42' };
const t0 = new Date('2026-11-29T10:00:00Z');
const later = (ms: number): Date => new Date(t0.getTime() + ms);

const install = (name: string, files: number): Finding => ({
  kind: 'package-added',
  severity: 'high',
  ecosystem: 'dpkg',
  name,
  after: '1.0',
  changes: Array.from({ length: files }, (_, i) => ({ kind: 'file-added' as const, severity: 'high' as const, path: `/usr/lib/${name}/f${i}`, owner: { ecosystem: 'dpkg' as const, name } })),
});
const dropped = (path: string, digest = 'a'.repeat(64)): Finding => ({ kind: 'file-added', severity: 'high', path, after: digest, reason: 'new executable in a system path' });

function run(findings: Finding[], memory: HostAlertMemory, opts: { at?: Date; status?: 'cattle' | 'pet'; rules?: CompiledRules; policy?: AlertPolicy } = {}) {
  const evaluated = applyRules(findings, { host, image, at: opts.at ?? t0 }, opts.rules ?? compileRules(emptyRuleSet()));
  return planAlerts({ host, image, findings: evaluated, hostStatus: opts.status ?? (findings.length > 0 ? 'pet' : 'cattle'), now: opts.at ?? t0, memory, ...(opts.policy ? { policy: opts.policy } : {}) });
}

describe('alert policy', () => {
  it('raises one alert for a package install with hundreds of files', () => {
    const { alerts } = run([install('curl', 300)], emptyHostAlertMemory());
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ action: 'trigger', severity: 'high', counts: { findings: 1, files: 300 } });
    expect(alerts[0]!.title).toBe('web-7 drifted from web-golden 42: package-added dpkg curl 1.0 (300 files)');
  });

  it('raises one alert for the loose files of one report, and one per package', () => {
    const { alerts } = run([install('curl', 3), install('nmap', 5), dropped('/usr/local/bin/a'), dropped('/usr/local/bin/b')], emptyHostAlertMemory());
    expect(alerts.map((a) => a.counts)).toEqual([
      { findings: 1, files: 3 },
      { findings: 1, files: 5 },
      { findings: 2, files: 2 },
    ]);
    expect(new Set(alerts.map((a) => a.dedupKey)).size).toBe(3);
  });

  it('gives the same change the same dedup key, stable per host and change set', () => {
    const a = run([install('curl', 3)], emptyHostAlertMemory()).alerts[0]!;
    const b = run([install('curl', 3)], emptyHostAlertMemory(), { at: later(3_600_000) }).alerts[0]!;
    expect(a.dedupKey).toBe(b.dedupKey);
    expect(a.dedupKey).toMatch(/^quicksand:h-1:[0-9a-f]{16}$/);
    const other = planAlerts({ host: { ...host, id: 'h-2' }, image, findings: applyRules([install('curl', 3)], { host, image, at: t0 }, compileRules(emptyRuleSet())), hostStatus: 'pet', now: t0, memory: emptyHostAlertMemory() });
    expect(other.alerts[0]!.dedupKey).not.toBe(a.dedupKey);
  });

  it('does not page twice for the same change when the host flaps, and resolves when it is cattle', () => {
    let memory = emptyHostAlertMemory();
    const first = run([dropped('/usr/local/bin/x')], memory);
    memory = first.memory;
    expect(first.alerts.map((a) => a.action)).toEqual(['trigger']);
    // The same change seen again by the next full scan: nothing new.
    const again = run([dropped('/usr/local/bin/x')], memory, { at: later(60_000) });
    expect(again.alerts).toEqual([]);
    memory = again.memory;
    // Reverted: the host is cattle again; the open alert is resolved with the same key.
    const resolved = run([], memory, { at: later(120_000), status: 'cattle' });
    expect(resolved.alerts.map((a) => [a.action, a.dedupKey])).toEqual([['resolve', first.alerts[0]!.dedupKey]]);
    memory = resolved.memory;
    // And back: the same change does not page again.
    expect(run([dropped('/usr/local/bin/x')], memory, { at: later(180_000) }).alerts).toEqual([]);
    // A different content at that path is a different change.
    expect(run([dropped('/usr/local/bin/x', 'b'.repeat(64))], memory, { at: later(240_000) }).alerts).toHaveLength(1);
  });

  it('alerts only the new part when a full scan repeats loose files an event already alerted', () => {
    const first = run([dropped('/usr/local/bin/a')], emptyHostAlertMemory());
    const full = run([dropped('/usr/local/bin/a'), dropped('/usr/local/bin/b')], first.memory, { at: later(1000) });
    expect(full.alerts).toHaveLength(1);
    expect(full.alerts[0]!.findings.map((f) => f.path)).toEqual(['/usr/local/bin/b']);
  });

  it('throttles per host and lets the held changes out as one alert when the window has room', () => {
    const policy: AlertPolicy = { ...DEFAULT_ALERT_POLICY, throttle: { max: 2, windowMs: 600_000 } };
    let memory = emptyHostAlertMemory();
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = run([install(`pkg${i}`, 2)], memory, { at: later(i * 1000), policy });
      memory = r.memory;
      sent.push(...r.alerts.map((a) => a.findings.map((f) => f.name).join('+')));
    }
    // The second slot of the window takes everything still waiting at that moment.
    expect(sent).toEqual(['pkg0', 'pkg1']);
    // Held as one backlog: it goes out as one alert anyway.
    expect(memory.held).toHaveLength(1);
    expect(memory.held[0]!.findings.map((f) => f.finding.name)).toEqual(['pkg2', 'pkg3', 'pkg4']);
    // Nothing new, but the window moved on: what was held goes out, as one alert.
    const flushed = run([], memory, { at: later(700_000), status: 'pet', policy });
    expect(flushed.alerts).toHaveLength(1);
    expect(flushed.alerts[0]!.findings.map((f) => f.name)).toEqual(['pkg2', 'pkg3', 'pkg4']);
    expect(flushed.memory.held).toEqual([]);
    // Other hosts have their own window.
    expect(planAlerts({ host: { ...host, id: 'h-9' }, image, findings: [], hostStatus: 'pet', now: later(1000), memory: emptyHostAlertMemory(), policy }).alerts).toEqual([]);
  });

  it('keeps what the throttle holds bounded however many changes a host makes', () => {
    const policy: AlertPolicy = { ...DEFAULT_ALERT_POLICY, throttle: { max: 1, windowMs: 600_000 } };
    let memory = emptyHostAlertMemory();
    for (let i = 0; i < 300; i++) memory = run([install(`pkg${i}`, 2)], memory, { at: later(i * 10), policy }).memory;
    expect(memory.held).toHaveLength(1);
    expect(memory.held[0]!.findings.length).toBeLessThanOrEqual(50);
    expect(memory.held[0]!.findings[0]!.finding.name).toBe('pkg1');
    expect(JSON.stringify(memory).length).toBeLessThan(200_000);
  });

  it('never alerts suppressed, auto-approved or info findings', () => {
    const rules = compileRules(
      parseRuleSet(
        {
          schema: RULES_SCHEMA,
          rules: [
            { id: 'hush', match: { package: 'unattended-*' }, action: { type: 'suppress' } },
            { id: 'mw', match: { package: 'curl' }, action: { type: 'auto-approve', inMaintenanceWindow: false } },
          ],
        },
        'rules',
      ),
    );
    const info: Finding = { kind: 'file-modified', severity: 'info', path: '/etc/hostname' };
    const evaluated = applyRules([install('unattended-upgrades', 4), install('curl', 2), info], { host, image, at: t0, ticket: 'CHG-1' }, rules);
    expect(planAlerts({ host, image, findings: evaluated, hostStatus: 'pet', now: t0, memory: emptyHostAlertMemory() }).alerts).toEqual([]);
  });

  it('retries with exponential backoff, capped, and gives up after the last attempt', () => {
    const s = { baseMs: 1000, factor: 2, maxDelayMs: 5000, maxAttempts: 5 };
    expect([1, 2, 3, 4, 5].map((n) => nextRetryDelay(n, s))).toEqual([1000, 2000, 4000, 5000, null]);
    expect(() => nextRetryDelay(0, s)).toThrow(RangeError);
    expect(settleAttempt(1, { ok: false, status: 500, error: 'x', retryable: true }, 100, s)).toEqual({ result: 'retry', nextAttemptAt: 1100 });
    expect(settleAttempt(1, { ok: false, status: 400, error: 'x', retryable: false }, 100, s)).toEqual({ result: 'gave-up' });
    expect(settleAttempt(5, { ok: false, error: 'timeout', retryable: true }, 100, s)).toEqual({ result: 'gave-up' });
    expect(settleAttempt(2, { ok: true, status: 202 }, 100, s)).toEqual({ result: 'delivered' });
  });

  it('sends an alert only to sinks whose minimum severity it reaches, a resolve where its trigger went', () => {
    const pd = parseAlertSink({ type: 'pagerduty', id: 'pd', routingKey: 'R'.repeat(32) }, 'sink');
    const hook = parseAlertSink({ type: 'webhook', id: 'hook', url: 'http://127.0.0.1:1/x', secret: 's'.repeat(16) }, 'sink');
    const low = run([{ kind: 'file-added', severity: 'low', path: '/opt/data' }], emptyHostAlertMemory());
    expect(sinksFor(low.alerts[0]!, [pd, hook]).map((s) => s.id)).toEqual(['hook']);
    const resolve = run([], low.memory, { status: 'cattle', at: later(1000) }).alerts[0]!;
    expect(sinksFor(resolve, [pd, hook]).map((s) => s.id)).toEqual(['hook']);
    const high = run([install('curl', 1)], emptyHostAlertMemory()).alerts[0]!;
    expect(sinksFor(high, [pd, hook]).map((s) => s.id)).toEqual(['pd', 'hook']);
  });
});

describe('sink payloads', () => {
  const alert = run([install('curl', 3), dropped('/usr/local/bin/<evil>')], emptyHostAlertMemory()).alerts;

  it('builds a PagerDuty v2 trigger with the dedup key, and a resolve with the same key', () => {
    const sink = parseAlertSink({ type: 'pagerduty', id: 'pd', routingKey: 'R'.repeat(32) }, 'sink');
    if (sink.type !== 'pagerduty') throw new Error('parsed as another sink type');
    const ev = buildPagerdutyEvent(sink, alert[0]!);
    expect(ev).toMatchObject({
      routing_key: 'R'.repeat(32),
      event_action: 'trigger',
      dedup_key: alert[0]!.dedupKey,
      payload: { source: 'web-7', severity: 'error', component: 'web-golden', group: 'web', class: 'drift', timestamp: t0.toISOString() },
    });
    expect(sink.url).toBe('https://events.pagerduty.com/v2/enqueue');
    const resolve = run([], run([install('curl', 3)], emptyHostAlertMemory()).memory, { status: 'cattle' }).alerts[0]!;
    expect(buildPagerdutyEvent(sink, resolve)).toEqual({ routing_key: 'R'.repeat(32), event_action: 'resolve', dedup_key: alert[0]!.dedupKey });
  });

  it('builds a Slack message with text and blocks, escaping what Slack reads as markup', () => {
    const p = buildSlackPayload(alert[1]!);
    expect(p.text).toMatch(/^:red_circle: \[HIGH\] web-7 drifted from web-golden 42/);
    expect(JSON.stringify(p.blocks)).toContain('/usr/local/bin/&lt;evil&gt;');
    expect(JSON.stringify(p.blocks)).not.toContain('<evil>');
  });

  it('keeps every Slack section under Slack’s 3000-character limit', () => {
    const long = run([dropped(`/usr/local/bin/${'x'.repeat(2000)}`), dropped(`/usr/local/bin/${'y'.repeat(2000)}`)], emptyHostAlertMemory()).alerts[0]!;
    const sections = buildSlackPayload(long).blocks.filter((b) => (b as { text?: { text: string } }).text) as Array<{ text: { text: string } }>;
    expect(sections.length).toBeGreaterThan(0);
    for (const s of sections) expect(s.text.text.length).toBeLessThanOrEqual(3000);
  });

  it('rejects a sink configuration with the path of the bad field', () => {
    expect(() => parseAlertSink({ type: 'webhook', id: 'w', url: 'ftp://x', secret: 's'.repeat(16) }, 'POST /api/v1/sinks')).toThrow(/url: expected an http:\/\/ or https:\/\/ URL/);
    expect(() => parseAlertSink({ type: 'webhook', id: 'w', url: 'http://x', secret: 'short' }, 'POST /api/v1/sinks')).toThrow(/secret: expected a secret of at least 16/);
    expect(() => parseAlertSink({ type: 'pagerduty', id: 'p', routingKey: 'nope' }, 'POST /api/v1/sinks')).toThrow(/routingKey: expected a 32-character/);
    expect(() => parseAlertSink({ type: 'slack', id: 's', url: 'http://hooks.example/x' }, 'POST /api/v1/sinks')).toThrow(/url: expected an https:\/\//);
  });
});
