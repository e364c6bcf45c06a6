// When an alert is raised, for what, and how its delivery is retried. Pure: the clock, the
// memory of what was alerted and the queue are all passed in; the server's store keeps them.
import { createHash } from 'node:crypto';
import { compareSeverity } from '../../shared/findings.js';
import type { Severity } from '../../shared/findings.js';
import type { AlertSink } from '../../shared/alerts.js';
import type { Finding } from '../../shared/report.js';
import { attentionSeverity, needsAttention } from '../rules.js';
import type { EvaluatedFinding } from '../rules.js';
import { ALERT_FINDINGS_SHOWN, describeFinding } from './alert.js';
import type { Alert, AlertFinding } from './alert.js';

export interface RetrySchedule {
  /** Delay after the first failed attempt. */
  baseMs: number;
  factor: number;
  maxDelayMs: number;
  /** Attempts in all, the first included; after the last failure the delivery is given up. */
  maxAttempts: number;
}

export interface AlertPolicy {
  /** Less severe than this never alerts (info never does, whatever this says). */
  minSeverity: Exclude<Severity, 'info'>;
  /** At most `max` trigger alerts per host per `windowMs`; the rest wait and go out as one. */
  throttle: { max: number; windowMs: number };
  /**
   * Critical change sets (tampering, setuid, capabilities) have a budget of their own, far larger:
   * the throttle is there to stop floods, never to delay the one page that matters.
   */
  criticalThrottle: { max: number; windowMs: number };
  /** How long a change stays remembered as alerted: a host flapping within it does not page again. */
  dedupMemoryMs: number;
  retry: RetrySchedule;
}

export const DEFAULT_ALERT_POLICY: AlertPolicy = {
  minSeverity: 'low',
  throttle: { max: 3, windowMs: 15 * 60_000 },
  criticalThrottle: { max: 30, windowMs: 15 * 60_000 },
  dedupMemoryMs: 30 * 24 * 3_600_000,
  // 10 s, 20 s, 40 s ... capped at 15 min: 8 attempts span about 40 minutes.
  retry: { baseMs: 10_000, factor: 2, maxDelayMs: 15 * 60_000, maxAttempts: 8 },
};

/**
 * Delay before the next attempt after `failedAttempts` failures (1 after the first), or null
 * when the delivery is to be given up.
 */
export function nextRetryDelay(failedAttempts: number, schedule: RetrySchedule): number | null {
  if (!Number.isInteger(failedAttempts) || failedAttempts < 1) throw new RangeError(`failedAttempts must be a positive integer, got ${failedAttempts}`);
  if (failedAttempts >= schedule.maxAttempts) return null;
  return Math.min(schedule.maxDelayMs, Math.round(schedule.baseMs * schedule.factor ** (failedAttempts - 1)));
}

/** A group of findings that one alert stands for. */
export interface ChangeSet {
  /** Identity of the change, independent of when it was seen: the dedup memory's key. */
  key: string;
  /** Identities of the changes it is made of; a loose file is its own. */
  identities: string[];
  findings: EvaluatedFinding[];
}

/** What the policy remembers per host between reports; the server stores it as is (JSON). */
export interface HostAlertMemory {
  /** Change identity → epoch ms it was first alerted. */
  alerted: Record<string, number>;
  /** Alerts triggered and not resolved yet; a resolve goes to the sinks its trigger went to. */
  open: Array<{ dedupKey: string; severity: Alert['severity'] }>;
  /** Epoch ms of the trigger alerts a sink took in the current throttle window. */
  recent: number[];
  /** The same for critical change sets, counted against `criticalThrottle` (absent in memories of before it). */
  recentCritical?: number[];
  /** Change sets held back by the throttle, to go out as one alert when there is room. */
  held: ChangeSet[];
}

export function emptyHostAlertMemory(): HostAlertMemory {
  return { alerted: {}, open: [], recent: [], recentCritical: [], held: [] };
}

/**
 * When what the throttle holds can go out (epoch ms): as soon as the window has room again.
 * Null when nothing is held. The server's delivery loop releases it then, with no report needed.
 */
export function heldUntil(memory: HostAlertMemory, policy: AlertPolicy = DEFAULT_ALERT_POLICY): number | null {
  if (memory.held.length === 0) return null;
  const { max, windowMs } = policy.throttle;
  if (memory.recent.length < max) return 0;
  return memory.recent[memory.recent.length - max]! + windowMs;
}

export interface AlertInput {
  host: Alert['host'];
  image: Alert['image'];
  /** The report's top-level findings after the rules. */
  findings: readonly EvaluatedFinding[];
  /** The host's status after this report: `cattle` resolves what is open. */
  hostStatus: 'cattle' | 'pet' | 'stale';
  now: Date;
  memory: HostAlertMemory;
  policy?: AlertPolicy;
  link?: string;
  /**
   * Whether a sink takes an alert of this severity now (default: yes). An alert no sink takes is
   * still planned (and shown), but spends no throttle budget and opens nothing to resolve.
   */
  routed?: (severity: Alert['severity']) => boolean;
}

export interface PlannedAlerts {
  alerts: Alert[];
  memory: HostAlertMemory;
  /**
   * Per trigger (by dedup key): the identities of the findings it was made from. Its content is
   * made again from their triage state when it is sent (see `composeTrigger`).
   */
  basis: Map<string, string[]>;
}

/**
 * Turns one report (or none: call it with no findings to let held alerts out) into alerts:
 * - one alert per change set: a package install with hundreds of files is one alert, and the
 *   loose file findings of one report are one alert together;
 * - a change already alerted (within `dedupMemoryMs`) is not alerted again, so a host that
 *   flaps between two states, or is scanned in full after an event report, pages once;
 * - at most `throttle.max` triggers a sink took per host per window; the others are held and go
 *   out as one alert when the window has room again (the server releases them on a timer);
 * - critical change sets count against `criticalThrottle` only, so a flood of low findings never
 *   holds back the page about tampering;
 * - a host that is cattle again resolves every alert still open for it.
 */
export function planAlerts(input: AlertInput): PlannedAlerts {
  const policy = input.policy ?? DEFAULT_ALERT_POLICY;
  const critical = policy.criticalThrottle ?? DEFAULT_ALERT_POLICY.criticalThrottle;
  const routed = input.routed ?? (() => true);
  const now = input.now.getTime();
  // A loop, not Object.fromEntries(Object.entries(...).filter(...)): with every report of a host,
  // over a memory of a few dozen identities, the entries' arrays made it 5× slower (20 µs against
  // 4 µs a call): 1.4 s of the server's 35 busy seconds in bench:ingest's steady phase on
  // PostgreSQL. The keys are identities ("kind:..."), never __proto__.
  const alerted: Record<string, number> = {};
  for (const id in input.memory.alerted) {
    const at = input.memory.alerted[id]!;
    if (now - at < policy.dedupMemoryMs) alerted[id] = at;
  }
  const memory: HostAlertMemory = {
    alerted,
    open: [...input.memory.open],
    recent: input.memory.recent.filter((at) => now - at < policy.throttle.windowMs),
    recentCritical: (input.memory.recentCritical ?? []).filter((at) => now - at < critical.windowMs),
    held: [...input.memory.held],
  };
  const alerts: Alert[] = [];
  const basis = new Map<string, string[]>();

  if (input.hostStatus === 'cattle') {
    for (const o of memory.open) alerts.push(resolveAlert(input, o.dedupKey, o.severity));
    memory.open = [];
    memory.held = []; // nothing left to page about
  }

  const attention = input.findings.filter((f) => needsAttention(f, policy.minSeverity));
  const fresh: ChangeSet[] = [];
  for (const set of groupChangeSets(attention)) {
    const unseen = set.identities.filter((id) => memory.alerted[id] === undefined);
    if (unseen.length === 0) continue;
    // Only what was not alerted yet: a full scan that repeats old loose files adds just the new.
    const fresher = new Set(unseen);
    const kept = set.identities.length === 1 ? set.findings : set.findings.filter((f) => fresher.has(identityOf(f.finding)));
    for (const id of unseen) memory.alerted[id] = now;
    fresh.push({ key: unseen.length === set.identities.length ? set.key : `${set.key}:${hash(unseen.join('\n'))}`, identities: unseen, findings: kept });
  }

  /** Plans one trigger; true when a sink takes it (it then spends budget and is open). */
  const emit = (set: ChangeSet, spent: number[]): boolean => {
    const alert = triggerAlert(input, set);
    if (!alert) return false;
    alerts.push(alert);
    basis.set(alert.dedupKey, set.findings.map((f) => identityOf(f.finding)));
    if (!routed(alert.severity)) return false;
    memory.open.push({ dedupKey: alert.dedupKey, severity: alert.severity });
    spent.push(now);
    return true;
  };

  // Critical change sets first, each its own page, on their own budget; beyond even that they wait with the rest.
  const ordinary: ChangeSet[] = [];
  for (const set of fresh) {
    if (setSeverity(set) !== 'critical') ordinary.push(set);
    else if (memory.recentCritical!.length < critical.max) emit(set, memory.recentCritical!);
    else ordinary.push(set);
  }

  let room = Math.max(0, policy.throttle.max - memory.recent.length);
  if (room === 0) {
    memory.held = compactHeld([...memory.held, ...ordinary]);
    return { alerts, memory, basis };
  }
  // What the throttle held back goes out first, as one alert: it is a backlog, not news.
  const queue = memory.held.length > 0 ? [mergeChangeSets(memory.held), ...ordinary] : ordinary;
  memory.held = [];
  while (queue.length > 0 && room > 0) {
    // The last slot of a window takes everything still waiting, as one alert.
    if (emit(mergeChangeSets(room === 1 ? queue.splice(0) : queue.splice(0, 1)), memory.recent)) room--;
  }
  memory.held = compactHeld(queue);
  return { alerts, memory, basis };
}

function setSeverity(set: ChangeSet): Severity | null {
  let severity: Severity | null = null;
  for (const f of set.findings) {
    const s = attentionSeverity(f);
    if (s !== null && (severity === null || compareSeverity(s, severity) < 0)) severity = s;
  }
  return severity;
}

// The memory is stored and rewritten with every report of its host: what the throttle holds must
// not grow with every change a busy host makes (a 5,000-agent ingest run slowed tenfold when it
// did). The backlog goes out as one alert anyway, so it is kept as one change set, with a bounded
// sample of its findings and identities; the host's page lists them all.
const HELD_FINDINGS_KEPT = 50;
const HELD_IDENTITIES_KEPT = 500;

function compactHeld(held: ChangeSet[]): ChangeSet[] {
  if (held.length === 0) return held;
  const merged = mergeChangeSets(held);
  if (held.length === 1 && merged.findings.length <= HELD_FINDINGS_KEPT && merged.identities.length <= HELD_IDENTITIES_KEPT) return held;
  return [{ key: merged.key, identities: merged.identities.slice(0, HELD_IDENTITIES_KEPT), findings: merged.findings.slice(0, HELD_FINDINGS_KEPT) }];
}

function mergeChangeSets(sets: ChangeSet[]): ChangeSet {
  if (sets.length === 1) return sets[0]!;
  return { key: `batch:${hash(sets.map((t) => t.key).join('\n'))}`, identities: sets.flatMap((t) => t.identities), findings: sets.flatMap((t) => t.findings) };
}

/**
 * Groups top-level findings into change sets: by the agent's `changeSet` where it named one, a
 * package finding (with the files under it) on its own, and the remaining loose files together.
 */
export function groupChangeSets(findings: readonly EvaluatedFinding[]): ChangeSet[] {
  const byKey = new Map<string, EvaluatedFinding[]>();
  const loose: EvaluatedFinding[] = [];
  for (const f of findings) {
    if (f.finding.changeSet !== undefined) push(byKey, `changeset:${f.finding.changeSet}`, f);
    else if (f.finding.kind.startsWith('package-')) push(byKey, identityOf(f.finding), f);
    else loose.push(f);
  }
  const sets: ChangeSet[] = [...byKey].map(([key, fs]) => ({ key, identities: [key], findings: fs }));
  if (loose.length > 0) {
    const identities = loose.map((f) => identityOf(f.finding)).sort();
    sets.push({ key: identities.length === 1 ? identities[0]! : `files:${hash(identities.join('\n'))}`, identities, findings: loose });
  }
  return sets;
}

/** What makes a change the same change when it is seen again: not when, but what it is now. */
export function identityOf(f: Finding): string {
  const state = (x: Finding['before']): string => (x === undefined ? '' : typeof x === 'string' ? x : JSON.stringify(x));
  if (f.kind.startsWith('package-')) return `${f.kind}:${f.ecosystem}:${f.name}:${state(f.before)}->${state(f.after)}`;
  return `${f.kind}:${f.rawPath ?? f.path}:${state(f.after)}`;
}

/** Stable per host and change set; PagerDuty keeps one incident per dedup key. */
export function dedupKeyFor(hostId: string, changeSetKey: string): string {
  return `quicksand:${hostId}:${hash(changeSetKey)}`;
}

function triggerAlert(input: AlertInput, set: ChangeSet): Alert | null {
  const alert = composeTrigger(input, set.findings, input.now);
  return alert === null ? null : { ...alert, dedupKey: dedupKeyFor(input.host.id, set.key) };
}

/**
 * A trigger's content from findings as they stand: the server calls it again when the alert is
 * sent, with the findings' current decisions, so what a rule waived or an analyst approved
 * meanwhile is not paged. Null when none of them needs anyone. `dedupKey` is left for the caller.
 */
export function composeTrigger(input: Pick<AlertInput, 'host' | 'image' | 'link'>, findings: readonly EvaluatedFinding[], at: Date): Alert | null {
  const set: ChangeSet = { key: '', identities: [], findings: [...findings] };
  const severity = setSeverity(set);
  if (severity === null || severity === 'info') return null;
  const shown = [...set.findings].sort((a, b) => compareSeverity(a.decision.severity, b.decision.severity)).map(toAlertFinding);
  const files = shown.reduce((n, f) => n + Math.max(f.files, f.path ? 1 : 0), 0);
  const first = shown[0]!;
  const more = shown.length > 1 ? ` and ${shown.length - 1} more` : '';
  return {
    action: 'trigger',
    dedupKey: '',
    host: input.host,
    image: input.image,
    severity,
    title: `${input.host.hostname} drifted from ${input.image.name} ${input.image.version}: ${describeFinding(first)}${more}`,
    findings: shown.slice(0, ALERT_FINDINGS_SHOWN),
    counts: { findings: shown.length, files },
    at: at.toISOString(),
    ...(input.link === undefined ? {} : { link: input.link }),
  };
}

function resolveAlert(input: AlertInput, dedupKey: string, severity: Alert['severity']): Alert {
  return {
    action: 'resolve',
    dedupKey,
    host: input.host,
    image: input.image,
    severity,
    title: `${input.host.hostname} matches ${input.image.name} ${input.image.version} again`,
    findings: [],
    counts: { findings: 0, files: 0 },
    at: input.now.toISOString(),
    ...(input.link === undefined ? {} : { link: input.link }),
  };
}

function toAlertFinding(e: EvaluatedFinding): AlertFinding {
  const f = e.finding;
  let files = 0;
  const count = (x: Finding): void => {
    for (const c of x.changes ?? []) {
      if (c.path !== undefined) files++;
      count(c);
    }
  };
  count(f);
  const out: AlertFinding = { kind: f.kind, severity: e.decision.severity, files };
  if (f.ecosystem !== undefined) out.ecosystem = f.ecosystem;
  if (f.name !== undefined) out.name = f.name;
  if (f.path !== undefined) out.path = f.path;
  if (f.before !== undefined) out.before = f.before;
  if (f.after !== undefined) out.after = f.after;
  if (f.reason !== undefined) out.reason = f.reason;
  return out;
}

/** The sinks an alert goes to: those whose minimum it reaches (a resolve carries its trigger's severity). */
export function sinksFor(alert: Alert, sinks: readonly AlertSink[]): AlertSink[] {
  return sinks.filter((s) => compareSeverity(alert.severity, s.minSeverity) <= 0);
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}
