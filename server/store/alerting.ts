// What ingest does after storing a report's findings, inside the same transaction: the rules
// (the current rule set, compiled once per version), then the alert policy with the host's
// remembered alerts, then one queued delivery per alert and sink. Never sends: the delivery loop
// does, on its own timer, so a dead sink never slows ingest.
import type { Database as Db } from 'better-sqlite3';
import { parseRuleSet, emptyRuleSet } from '../../shared/rules.js';
import { compareSeverity } from '../../shared/findings.js';
import type { AlertSink } from '../../shared/alerts.js';
import type { Finding } from '../../shared/report.js';
import type { RuleSet } from '../../shared/rules.js';
import { DEFAULT_ALERT_POLICY, composeTrigger, emptyHostAlertMemory, heldUntil, planAlerts } from '../alerts/policy.js';
import type { AlertPolicy, HostAlertMemory } from '../alerts/policy.js';
import type { Alert } from '../alerts/alert.js';
import { planDeliveries } from '../alerts/queue.js';
import type { QueuedDelivery } from '../alerts/queue.js';
import { applyRules, compileRules, needsAttention } from '../rules.js';
import type { CompiledRules, EvaluatedFinding } from '../rules.js';
import { createAlertQueue, createSinkStore } from './alert-queue.js';
import { timeOrderedUuid } from './time-ordered-id.js';
import type { HeldAlerts } from './types.js';

export interface HostForAlerts {
  id: string;
  hostname: string;
  labels: Record<string, string>;
}

export interface Alerting {
  /** The current rules applied to a report's top-level findings. */
  evaluate(findings: readonly Finding[], host: HostForAlerts, image: { name: string }, at: Date, ticket?: string): EvaluatedFinding[];
  /** Plans and queues the alerts of one report (or of a status change: no findings). */
  alert(host: HostForAlerts, image: { name: string; version: string }, findings: readonly EvaluatedFinding[], status: 'cattle' | 'pet' | 'stale', now: Date): Alert[];
  labelsOf(hostId: string): Record<string, string>;
  /** Lets out what the throttle held for every host whose window has room again; returns the hosts. Call inside a transaction. */
  releaseDue(now: Date): string[];
  /** A queued trigger as it should go out now (see AlertQueueStore.current). */
  compose(delivery: QueuedDelivery, now: Date): Alert | null;
  /** What the throttle holds now, per host, with why and until when. */
  listHeld(hostId?: string): HeldAlerts[];
}

/** What the throttle holds for one host, from its memory row. Pure. */
export function heldAlertsOf(r: { host_id: string; memory: string; release_at: number }, policy: AlertPolicy): HeldAlerts {
  const m = JSON.parse(r.memory) as HostAlertMemory;
  const { max, windowMs } = policy.throttle;
  const shown = m.held.flatMap((set) => set.findings).slice(0, 20);
  return {
    hostId: r.host_id,
    state: 'held',
    reason: `throttle: ${max} alert${max === 1 ? '' : 's'} per ${Math.round(windowMs / 60_000)} min reached for this host`,
    until: new Date(r.release_at).toISOString(),
    changeSets: m.held.length,
    findings: shown.map(({ finding: f, decision }) => ({ kind: f.kind, severity: decision.severity, ...(f.name === undefined ? {} : { name: f.name }), ...(f.path === undefined ? {} : { path: f.path }) })),
  };
}

export function createAlerting(db: Db, policy: AlertPolicy = DEFAULT_ALERT_POLICY): Alerting {
  const latestRules = db.prepare<[], { version: number; body: string }>('SELECT version, body FROM rule_sets ORDER BY version DESC LIMIT 1');
  const getMemory = db.prepare<[string], { memory: string }>('SELECT memory FROM host_alert_memory WHERE host_id = ?');
  const putMemory = db.prepare(
    `INSERT INTO host_alert_memory (host_id, memory, updated_at, release_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (host_id) DO UPDATE SET memory = excluded.memory, updated_at = excluded.updated_at, release_at = excluded.release_at`,
  );
  const labels = db.prepare<[string], { labels: string }>('SELECT labels FROM hosts WHERE id = ?');
  const releasable = db.prepare<[number], { id: string; hostname: string; labels: string; image_name: string | null; image_version: string | null; status: 'cattle' | 'pet' | 'stale' }>(
    `SELECT h.id, h.hostname, h.labels, h.image_name, h.image_version, h.status FROM host_alert_memory m JOIN hosts h ON h.id = m.host_id
     WHERE m.release_at IS NOT NULL AND m.release_at <= ?`,
  );
  const heldRows = db.prepare<{ hostId: string | null }, { host_id: string; memory: string; release_at: number }>(
    'SELECT host_id, memory, release_at FROM host_alert_memory WHERE release_at IS NOT NULL AND (@hostId IS NULL OR host_id = @hostId) ORDER BY release_at, host_id',
  );
  // The open findings of one change, unless an approval of this very state is in force.
  const standing = db.prepare<{ hostId: string; identity: string; now: string }, { detail: string; ticket: string | null }>(
    `SELECT f.detail, f.ticket FROM findings f
     WHERE f.host_id = @hostId AND f.identity = @identity AND f.resolved_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.finding_id = f.id AND a.identity = f.identity AND a.reopened_at IS NULL
                       AND (a.expires_at IS NULL OR a.expires_at > @now))`,
  );
  const sinks = createSinkStore(db);
  const queue = createAlertQueue(db);

  let compiled: { version: number; rules: CompiledRules } = { version: 0, rules: compileRules(emptyRuleSet()) };
  function currentRules(): CompiledRules {
    const row = latestRules.get();
    const version = row?.version ?? 0;
    if (version !== compiled.version) {
      const set: RuleSet = row === undefined ? emptyRuleSet() : parseRuleSet(JSON.parse(row.body), `rule set ${version}`);
      compiled = { version, rules: compileRules(set) };
    }
    return compiled.rules;
  }

  const self: Alerting = {
    evaluate(findings, host, image, at, ticket) {
      return applyRules(findings, { host, image, at, ...(ticket === undefined ? {} : { ticket }) }, currentRules());
    },
    alert(host, image, findings, status, now) {
      const row = getMemory.get(host.id);
      const memory: HostAlertMemory = row === undefined ? emptyHostAlertMemory() : (JSON.parse(row.memory) as HostAlertMemory);
      // Read only when an alert is planned: most reports plan none.
      let listed: AlertSink[] | undefined;
      const configuredSinks = (): AlertSink[] => (listed ??= sinks.listSinks());
      const routed = (severity: Alert['severity']): boolean => configuredSinks().some((s) => compareSeverity(severity, s.minSeverity) <= 0);
      const planned = planAlerts({ host, image, findings, hostStatus: status, now, memory, policy, routed });
      // Most reports change nothing the policy remembers: no write for them.
      const next = JSON.stringify(planned.memory);
      if (next !== row?.memory) putMemory.run(host.id, next, now.toISOString(), heldUntil(planned.memory, policy));
      for (const alert of planned.alerts) {
        if (alert.action === 'resolve') {
          // Only to the sinks that got the trigger: a sink added since never saw the incident.
          const got = new Set(queue.resolveTargets(alert.dedupKey));
          const to = configuredSinks().filter((s) => got.has(s.id));
          if (to.length === 0) queue.recordPlanned(alert, 'no sink got its trigger', now);
          else queue.enqueue(to.map((s) => ({ id: timeOrderedUuid(now.getTime()), sinkId: s.id, alert, notBefore: now.getTime() })), now);
          continue;
        }
        const deliveries = planDeliveries([alert], configuredSinks(), now, () => timeOrderedUuid(now.getTime()), planned.basis);
        if (deliveries.length === 0) queue.recordPlanned(alert, `no sink takes ${alert.severity} alerts`, now);
        else queue.enqueue(deliveries, now);
      }
      return planned.alerts;
    },
    releaseDue(now) {
      const hosts = releasable.all(now.getTime());
      for (const h of hosts) {
        self.alert({ id: h.id, hostname: h.hostname, labels: JSON.parse(h.labels) as Record<string, string> }, { name: h.image_name ?? '', version: h.image_version ?? '' }, [], h.status, now);
      }
      return hosts.map((h) => h.id);
    },
    compose(delivery, now) {
      const queued = delivery.alert;
      if (queued.action !== 'trigger' || delivery.basis === undefined) return queued;
      const host = { ...queued.host, labels: self.labelsOf(queued.host.id) };
      const current: EvaluatedFinding[] = [];
      for (const identity of delivery.basis) {
        for (const r of standing.all({ hostId: host.id, identity, now: now.toISOString() })) {
          const [e] = self.evaluate([JSON.parse(r.detail) as Finding], host, queued.image, now, r.ticket ?? undefined);
          if (e !== undefined && needsAttention(e, policy.minSeverity)) current.push(e);
        }
      }
      const fresh = composeTrigger({ host, image: queued.image, ...(queued.link === undefined ? {} : { link: queued.link }) }, current, new Date(queued.at));
      if (fresh === null) return null;
      const alert: Alert = { ...fresh, dedupKey: queued.dedupKey };
      return JSON.stringify(alert) === JSON.stringify(queued) ? queued : alert;
    },
    listHeld(hostId) {
      return heldRows.all({ hostId: hostId ?? null }).map((r) => heldAlertsOf(r, policy));
    },
    labelsOf(hostId) {
      const r = labels.get(hostId);
      return r === undefined ? {} : (JSON.parse(r.labels) as Record<string, string>);
    },
  };
  return self;
}
