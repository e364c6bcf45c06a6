import { technique } from '../../shared/attack.js';
import { maxSeverity } from '../../shared/findings.js';
import { DEFAULT_SENSITIVE, compileGlobs } from '../../shared/policy.js';
import type { Policy, SensitiveRule } from '../../shared/policy.js';
import type { Finding } from '../../shared/report.js';

/** The sensitive-path rules of a policy, compiled once per scan: the first that matches a finding. */
export type SensitiveMatcher = (finding: Finding) => SensitiveRule | undefined;

export function compileSensitive(policy: Pick<Policy, 'sensitive'>): SensitiveMatcher {
  const rules = (policy.sensitive ?? DEFAULT_SENSITIVE).map((rule) => ({ rule, test: compileGlobs([rule.path]) }));
  return (finding) => {
    const path = finding.path;
    if (path === undefined) return undefined;
    return rules.find(({ rule, test }) => (!rule.added || finding.kind === 'file-added') && test(path))?.rule;
  };
}

/**
 * Raises a file finding that no package operation explains when it lies in a place intruders
 * persist or escalate in, and names the ATT&CK technique. A technique the finding already has
 * (a setuid bit, a tampered binary) stays: it is the more specific. `uidZero` are the accounts
 * with uid 0 besides root in the host's /etc/passwd now: a changed passwd with one is critical.
 * Info findings (mutable by policy, labels) stay as they are. Pure; changes `finding` in place.
 */
export function raiseSensitive(finding: Finding, match: SensitiveMatcher, uidZero: readonly string[]): void {
  if (finding.severity === 'info') return;
  const rule = match(finding);
  if (!rule) return;
  finding.severity = maxSeverity(finding.severity, rule.severity);
  finding.attack ??= technique(rule.technique);
  if (finding.path === '/etc/passwd' && finding.kind !== 'file-removed' && uidZero.length > 0) {
    finding.severity = 'critical';
    finding.attack = technique('T1136.001');
    finding.reason = `accounts with uid 0 besides root: ${uidZero.join(', ')}`;
  }
}

/** Names of the accounts with uid 0 other than `root` in a passwd file's text. Pure. */
export function uidZeroAccounts(passwd: string): string[] {
  const out: string[] = [];
  for (const line of passwd.split('\n').slice(0, 100_000)) {
    const fields = line.split(':');
    if (fields.length >= 4 && fields[2]!.trim() === '0' && fields[0] !== 'root' && fields[0] !== '') out.push(fields[0]!.slice(0, 64));
  }
  return out;
}
