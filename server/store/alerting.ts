// What ingest does after storing a report's findings, inside the same transaction: the rules
// (the current rule set, compiled once per version), then the alert policy with the host's
// remembered alerts, then one queued delivery per alert and sink. Never sends: the delivery loop
// does, on its own timer, so a dead sink never slows ingest.
import { randomUUID } from 'node:crypto';
import type { Database as Db } from 'better-sqlite3';
import { parseRuleSet, emptyRuleSet } from '../../shared/rules.js';
import type { Finding } from '../../shared/report.js';
import type { RuleSet } from '../../shared/rules.js';
import { DEFAULT_ALERT_POLICY, emptyHostAlertMemory, planAlerts } from '../alerts/policy.js';
import type { AlertPolicy, HostAlertMemory } from '../alerts/policy.js';
import type { Alert } from '../alerts/alert.js';
import { planDeliveries } from '../alerts/queue.js';
import { applyRules, compileRules } from '../rules.js';
import type { CompiledRules, EvaluatedFinding } from '../rules.js';
import { createAlertQueue, createSinkStore } from './alert-queue.js';

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
}

export function createAlerting(db: Db, policy: AlertPolicy = DEFAULT_ALERT_POLICY): Alerting {
  const latestRules = db.prepare<[], { version: number; body: string }>('SELECT version, body FROM rule_sets ORDER BY version DESC LIMIT 1');
  const getMemory = db.prepare<[string], { memory: string }>('SELECT memory FROM host_alert_memory WHERE host_id = ?');
  const putMemory = db.prepare(
    `INSERT INTO host_alert_memory (host_id, memory, updated_at) VALUES (?, ?, ?)
     ON CONFLICT (host_id) DO UPDATE SET memory = excluded.memory, updated_at = excluded.updated_at`,
  );
  const labels = db.prepare<[string], { labels: string }>('SELECT labels FROM hosts WHERE id = ?');
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

  return {
    evaluate(findings, host, image, at, ticket) {
      return applyRules(findings, { host, image, at, ...(ticket === undefined ? {} : { ticket }) }, currentRules());
    },
    alert(host, image, findings, status, now) {
      const row = getMemory.get(host.id);
      const memory: HostAlertMemory = row === undefined ? emptyHostAlertMemory() : (JSON.parse(row.memory) as HostAlertMemory);
      const planned = planAlerts({ host, image, findings, hostStatus: status, now, memory, policy });
      // Most reports change nothing the policy remembers: no write for them.
      const next = JSON.stringify(planned.memory);
      if (next !== row?.memory) putMemory.run(host.id, next, now.toISOString());
      if (planned.alerts.length > 0) queue.enqueue(planDeliveries(planned.alerts, sinks.listSinks(), now, randomUUID), now);
      return planned.alerts;
    },
    labelsOf(hostId) {
      const r = labels.get(hostId);
      return r === undefined ? {} : (JSON.parse(r.labels) as Record<string, string>);
    },
  };
}
