import { z } from 'zod';
import { ECOSYSTEMS, FINDING_KINDS, SEVERITIES } from './findings.js';
import { QuicksandError } from './errors.js';
import { formatIssues } from './schema-errors.js';
import { LIMITS, boundedArray, boundedRecord, boundedString } from './bounds.js';

export const RULES_SCHEMA = 'quicksand.rules/v1';

const oneOrMany = <T extends z.ZodType>(item: T) => z.union([item, boundedArray(item, MAX_RULE_ITEMS).min(1)]);
/** A rule list, and the items one rule field may list. */
const MAX_RULE_ITEMS = 1000;
/** A glob in a rule: long enough for any real path, short enough that matching stays cheap. */
const glob = (): z.ZodString => boundedString(LIMITS.path);
const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected a time like "02:30" (UTC)');

/**
 * What a rule matches. Every field given must match (and); a list matches any of its items (or).
 * `package` and `image` are globs (`*`, `?`), `path` an absolute-path glob as in the policy (a
 * folder covers everything below it). `package` matches a package finding's name and a file
 * finding's owner. `severity` is the severity the agent gave (for severity rules) or the one in
 * force after the severity rules (for suppress and auto-approve rules).
 */
export const ruleMatchSchema = z.strictObject({
  kind: oneOrMany(z.enum(FINDING_KINDS)).optional(),
  ecosystem: oneOrMany(z.enum(ECOSYSTEMS)).optional(),
  package: oneOrMany(glob().min(1)).optional(),
  path: oneOrMany(glob().regex(/^\//, 'expected an absolute path glob')).optional(),
  image: oneOrMany(glob().min(1)).optional(),
  // Every label named must be on the host with a value the glob matches.
  hostLabels: boundedRecord(boundedString(100).min(1), glob()).optional(),
  severity: oneOrMany(z.enum(SEVERITIES)).optional(),
});
export type RuleMatch = z.infer<typeof ruleMatchSchema>;

export const ruleActionSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('severity'), severity: z.enum(SEVERITIES) }),
  z.strictObject({ type: z.literal('suppress') }),
  z.strictObject({
    type: z.literal('auto-approve'),
    // Both default to the safe side: only inside a declared window, only with a ticket.
    inMaintenanceWindow: z.boolean().default(true),
    // A glob the change's ticket must match (`CHG-*`); a change without a ticket never matches.
    // A glob, not a regular expression: rules come from users and run on every finding.
    ticket: glob().min(1).default('*'),
  }),
]);
export type RuleAction = z.infer<typeof ruleActionSchema>;

export const ruleSchema = z.strictObject({
  id: boundedString(200).min(1),
  description: boundedString(LIMITS.text).optional(),
  match: ruleMatchSchema.default(() => ({})),
  action: ruleActionSchema,
});
export type Rule = z.infer<typeof ruleSchema>;

/**
 * A declared maintenance window: absolute (`start`..`end`) or weekly (UTC days and times; `to`
 * before `from` runs past midnight). `match` narrows it to some hosts (image, labels).
 */
export const maintenanceWindowSchema = z
  .strictObject({
    id: boundedString(200).min(1),
    // The change ticket the window was approved under; changes inside it carry it.
    ticket: boundedString(200).min(1).optional(),
    start: z.iso.datetime().optional(),
    end: z.iso.datetime().optional(),
    weekly: z
      .strictObject({
        days: boundedArray(z.enum(['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']), 7).min(1),
        from: hhmm,
        to: hhmm,
      })
      .optional(),
    match: ruleMatchSchema.pick({ image: true, hostLabels: true }).default(() => ({})),
  })
  .refine((w) => (w.start !== undefined && w.end !== undefined) !== (w.weekly !== undefined), {
    message: 'give either start and end, or weekly',
  })
  .refine((w) => w.start === undefined || w.end === undefined || w.start < w.end, { message: 'end must be after start', path: ['end'] });
export type MaintenanceWindow = z.infer<typeof maintenanceWindowSchema>;

export const ruleSetSchema = z.strictObject({
  schema: z.literal(RULES_SCHEMA),
  rules: boundedArray(ruleSchema, MAX_RULE_ITEMS).default(() => []),
  maintenanceWindows: boundedArray(maintenanceWindowSchema, MAX_RULE_ITEMS).default(() => []),
});
export type RuleSet = z.infer<typeof ruleSetSchema>;

export function emptyRuleSet(): RuleSet {
  return { schema: RULES_SCHEMA, rules: [], maintenanceWindows: [] };
}

/** Validates an untrusted rule set (an API upload); messages name the failing field. */
export function parseRuleSet(value: unknown, source: string): RuleSet {
  const result = ruleSetSchema.safeParse(value);
  if (!result.success) throw new QuicksandError('RULES_INVALID', `${source} is not a valid ${RULES_SCHEMA} rule set:\n${formatIssues(result.error)}`);
  const ids = new Set<string>();
  result.data.rules.forEach((r, i) => {
    if (ids.has(r.id)) throw new QuicksandError('RULES_INVALID', `${source} is not a valid ${RULES_SCHEMA} rule set:\nrules[${i}].id: "${r.id}" is used twice`);
    ids.add(r.id);
  });
  return result.data;
}
