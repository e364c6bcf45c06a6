// Where triage stands on one stored finding, from its rule decision and its approval. Pure: the
// store reads the rows, `now` decides whether an expiry has passed.
import type { FindingTriage } from '../shared/api.js';
import type { Decision } from './rules.js';

export interface ApprovalRow {
  kind: string;
  created_by: string;
  reason: string;
  ticket: string | null;
  created_at: string;
  expires_at: string | null;
}

/**
 * An approval in force wins (it is what an analyst decided last); then a rule's waiver (only when
 * the rule took the whole finding, nested changes included: `waived`); then an approval whose
 * expiry passed; else the finding is open.
 */
export function findingTriage(decision: Decision | null, waived: boolean, row: ApprovalRow | undefined, firstSeen: string, now: Date): FindingTriage {
  const byRule = decision?.autoApproved ?? null;
  const waiver: FindingTriage['waiver'] =
    decision?.suppressed !== undefined
      ? { rule: decision.suppressed.rule, action: 'suppress' }
      : byRule !== null
        ? { rule: byRule.rule, action: 'auto-approve', ticket: byRule.ticket, ...(byRule.window === undefined ? {} : { window: byRule.window }) }
        : null;
  const approval: FindingTriage['approval'] =
    row === undefined ? null : { kind: row.kind, by: row.created_by, reason: row.reason, ticket: row.ticket, at: row.created_at, expiresAt: row.expires_at };
  const inForce = approval !== null && (approval.expiresAt === null || Date.parse(approval.expiresAt) > now.getTime());
  if (inForce) return { state: 'approved', approval, waiver };
  if (waived && byRule !== null && decision?.suppressed === undefined) {
    const ruled = { kind: 'rule', by: `rule:${byRule.rule}`, reason: `auto-approved by rule ${byRule.rule}`, ticket: byRule.ticket, at: firstSeen, expiresAt: null, ...(byRule.window === undefined ? {} : { window: byRule.window }) };
    return { state: 'approved', approval: ruled, waiver };
  }
  if (waived) return { state: 'waived', approval, waiver };
  if (approval !== null) return { state: 'approval-expired', approval, waiver };
  return { state: 'open', approval: null, waiver };
}
