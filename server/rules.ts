// Severity and alerting decided by an ordered rule list. Pure: the clock is `ctx.at`.
//
// Semantics, in the order they are applied to each finding (nested ones included):
// 1. The agent's severity (DESIGN.md's table) stands unless a rule changes it: with no rules
//    at all, every finding keeps the agent's severity, is neither suppressed nor approved, and
//    is alerted when above `info`.
// 2. Rules are read top to bottom. For each action type (severity, suppress, auto-approve) the
//    first rule of that type that matches decides, and later rules of that type are not read.
//    Rules of different types do not shadow each other: one finding may get its severity from
//    rule 3, be auto-approved by rule 7 and never be suppressed.
// 3. Severity rules match the agent's severity; suppress and auto-approve rules match the
//    severity in force after step 2's severity rule, so "suppress low" also catches what a rule
//    lowered to low.
// 4. suppress: the finding is stored, never alerted and never makes the host a pet (noise that
//    no one will ever act on). auto-approve: the finding counts as approved, with the rule, the
//    ticket and the window as its evidence (a legitimate change made the declared way). An
//    auto-approve rule matches only when the change carries a ticket its glob accepts (its own,
//    or the one the covering window was declared under), and by default only inside a declared
//    maintenance window that covers the host at `ctx.at`.
// 5. A finding nested under a package finding is suppressed or approved with its parent unless
//    a rule decides it on its own; its severity is its own (a rule that lowers "package-added
//    dpkg:*" does not lower the setuid binary that package brought).
import { compileGlobs } from '../shared/policy.js';
import { compileGlob } from '../shared/glob.js';
import { compareSeverity } from '../shared/findings.js';
import type { Severity } from '../shared/findings.js';
import type { Finding } from '../shared/report.js';
import type { MaintenanceWindow, Rule, RuleMatch, RuleSet } from '../shared/rules.js';

export interface RuleContext {
  host: { labels: Readonly<Record<string, string>> };
  image: { name: string };
  /** The change ticket this change carries (its change set, or declared for the host), if any. */
  ticket?: string | undefined;
  at: Date;
}

export interface Decision {
  /** The severity in force. */
  severity: Severity;
  agentSeverity: Severity;
  /** Id of the rule that set the severity, when one did. */
  severityRule?: string;
  suppressed?: { rule: string };
  autoApproved?: { rule: string; ticket: string; window?: string };
}

export interface EvaluatedFinding {
  finding: Finding;
  decision: Decision;
  changes?: EvaluatedFinding[];
}

type Matcher = (finding: Finding, ctx: RuleContext, severity: Severity) => boolean;

interface CompiledRule {
  rule: Rule;
  matches: Matcher;
  /** Auto-approve rules: the ticket glob. */
  ticket?: (ticket: string) => boolean;
}

export interface CompiledRules {
  severity: CompiledRule[];
  suppress: CompiledRule[];
  approve: CompiledRule[];
  windows: Array<{ window: MaintenanceWindow; matches: (ctx: RuleContext) => boolean }>;
}

/** Compiles the globs of a rule set once; evaluate many findings with the result. */
export function compileRules(set: RuleSet): CompiledRules {
  const compiled: CompiledRule[] = set.rules.map((rule) => ({
    rule,
    matches: compileMatch(rule.match),
    ...(rule.action.type === 'auto-approve' ? { ticket: compileNameGlob(rule.action.ticket) } : {}),
  }));
  return {
    severity: compiled.filter((c) => c.rule.action.type === 'severity'),
    suppress: compiled.filter((c) => c.rule.action.type === 'suppress'),
    approve: compiled.filter((c) => c.rule.action.type === 'auto-approve'),
    windows: set.maintenanceWindows.map((window) => {
      const m = compileMatch(window.match);
      return { window, matches: (ctx: RuleContext) => m({ kind: 'file-added', severity: 'info' }, ctx, 'info') };
    }),
  };
}

/** Decides one finding. `parent` is the decision of the package finding it is nested under. */
export function decide(finding: Finding, ctx: RuleContext, rules: CompiledRules, parent?: Decision): Decision {
  const agentSeverity = finding.severity;
  const decision: Decision = { severity: agentSeverity, agentSeverity };
  const sev = rules.severity.find((c) => c.matches(finding, ctx, agentSeverity));
  if (sev && sev.rule.action.type === 'severity') {
    decision.severity = sev.rule.action.severity;
    decision.severityRule = sev.rule.id;
  }
  const sup = rules.suppress.find((c) => c.matches(finding, ctx, decision.severity));
  if (sup) decision.suppressed = { rule: sup.rule.id };
  else if (parent?.suppressed) decision.suppressed = parent.suppressed;
  for (const c of rules.approve) {
    const action = c.rule.action;
    if (action.type !== 'auto-approve' || !c.matches(finding, ctx, decision.severity)) continue;
    let window: MaintenanceWindow | undefined;
    if (action.inMaintenanceWindow) {
      window = activeWindowsOf(rules, ctx)[0];
      if (window === undefined) continue;
    }
    // The change's own ticket, else the one its window was declared under (a change approved for
    // Saturday 02:00–04:00 on the web hosts): either way the change has one.
    const ticket = ctx.ticket?.trim() || window?.ticket?.trim();
    if (!ticket || !c.ticket?.(ticket)) continue;
    decision.autoApproved = { rule: c.rule.id, ticket, ...(window === undefined ? {} : { window: window.id }) };
    break;
  }
  if (!decision.autoApproved && parent?.autoApproved) decision.autoApproved = parent.autoApproved;
  return decision;
}

/** Decides every finding of a report, nested ones under their parent's decision. */
export function applyRules(findings: readonly Finding[], ctx: RuleContext, rules: CompiledRules): EvaluatedFinding[] {
  const walk = (f: Finding, parent?: Decision): EvaluatedFinding => {
    const decision = decide(f, ctx, rules, parent);
    const out: EvaluatedFinding = { finding: f, decision };
    if (f.changes) out.changes = f.changes.map((c) => walk(c, decision));
    return out;
  };
  return findings.map((f) => walk(f));
}

/** Ids of the maintenance windows that cover this host at `ctx.at`. */
export function activeWindows(rules: CompiledRules, ctx: RuleContext): string[] {
  return activeWindowsOf(rules, ctx).map((w) => w.id);
}

function activeWindowsOf(rules: CompiledRules, ctx: RuleContext): MaintenanceWindow[] {
  return rules.windows.filter((w) => w.matches(ctx) && windowCovers(w.window, ctx.at)).map((w) => w.window);
}

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

export function windowCovers(w: MaintenanceWindow, at: Date): boolean {
  if (w.start !== undefined && w.end !== undefined) return at.getTime() >= Date.parse(w.start) && at.getTime() < Date.parse(w.end);
  if (!w.weekly) return false;
  const minutes = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
  const from = minutes(w.weekly.from);
  const to = minutes(w.weekly.to);
  const now = at.getUTCHours() * 60 + at.getUTCMinutes();
  const today = DAYS[at.getUTCDay()]!;
  const yesterday = DAYS[(at.getUTCDay() + 6) % 7]!;
  if (from < to) return w.weekly.days.includes(today) && now >= from && now < to;
  // Past midnight: Saturday 22:00–02:00 covers Saturday evening and Sunday early morning.
  return (w.weekly.days.includes(today) && now >= from) || (w.weekly.days.includes(yesterday) && now < to);
}

/** Whether the finding (or anything nested under it) still needs someone: alert and pet status. */
export function needsAttention(e: EvaluatedFinding, minSeverity: Severity = 'low'): boolean {
  const own = !e.decision.suppressed && !e.decision.autoApproved && e.decision.severity !== 'info' && compareSeverity(e.decision.severity, minSeverity) <= 0;
  return own || (e.changes ?? []).some((c) => needsAttention(c, minSeverity));
}

/** The most severe severity in force among what still needs attention, or null. */
export function attentionSeverity(e: EvaluatedFinding): Severity | null {
  let best: Severity | null = null;
  const visit = (x: EvaluatedFinding): void => {
    if (!x.decision.suppressed && !x.decision.autoApproved && x.decision.severity !== 'info') {
      if (best === null || compareSeverity(x.decision.severity, best) < 0) best = x.decision.severity;
    }
    x.changes?.forEach(visit);
  };
  visit(e);
  return best;
}

function compileMatch(m: RuleMatch): Matcher {
  const list = <T>(v: T | T[] | undefined): T[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);
  const kinds = list(m.kind);
  const ecosystems = list(m.ecosystem);
  const severities = list(m.severity);
  const pkg = anyOf(list(m.package)?.map(compileNameGlob));
  const image = anyOf(list(m.image)?.map(compileNameGlob));
  const paths = m.path === undefined ? undefined : compileGlobs(list(m.path)!);
  const labels = m.hostLabels === undefined ? undefined : Object.entries(m.hostLabels).map(([k, v]) => [k, compileNameGlob(v)] as const);
  return (f, ctx, severity) => {
    if (kinds && !kinds.includes(f.kind)) return false;
    const eco = f.ecosystem ?? f.owner?.ecosystem;
    if (ecosystems && (eco === undefined || !ecosystems.includes(eco))) return false;
    if (pkg) {
      const name = f.kind.startsWith('package-') ? f.name : f.owner?.name;
      if (name === undefined || !pkg(name)) return false;
    }
    if (paths && (f.path === undefined || !paths(f.path))) return false;
    if (image && !image(ctx.image.name)) return false;
    if (labels && !labels.every(([k, g]) => ctx.host.labels[k] !== undefined && g(ctx.host.labels[k]!))) return false;
    if (severities && !severities.includes(severity)) return false;
    return true;
  };
}

function anyOf(fns: Array<(s: string) => boolean> | undefined): ((s: string) => boolean) | undefined {
  return fns === undefined ? undefined : (s) => fns.some((f) => f(s));
}

/** `*` any run of characters (`/` too: npm's `@scope/name`), `?` one; everything else literal. */
export function compileNameGlob(glob: string): (s: string) => boolean {
  return compileGlob(glob, { path: false, folder: false });
}
