// Host labels (`env=prod`, `team=payments`): set through the API or declared by the agent, matched
// by rules and maintenance windows (`hostLabels`). One schema for both ways in. Pure.
import { z } from 'zod';
import { QuicksandError } from './errors.js';

export const MAX_LABELS = 64;
const NAME = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$/;
const NAME_RULE = 'a label name is 1-63 letters, digits, ".", "_", "-" or "/", starting and ending with a letter or digit';

export const hostLabelsSchema = z
  .record(z.string().regex(NAME, NAME_RULE), z.string().max(200, 'a label value is at most 200 characters').regex(/^[^\p{Cc}]*$/u, 'a label value has no control characters'), {
    error: (issue) => (issue.code === 'invalid_key' ? NAME_RULE : undefined),
  })
  .refine((labels) => Object.keys(labels).length <= MAX_LABELS, { message: `at most ${MAX_LABELS} labels` });
export type HostLabels = z.infer<typeof hostLabelsSchema>;

/** The prefix an agent's own labels carry in the labels rules match on: `team` becomes `agent/team`. */
export const AGENT_LABEL_PREFIX = 'agent/';

/**
 * Labels in force: what the API set, and the agent's declaration under `agent/`. A host that
 * drifted is the last one to trust about which rules apply to it: were its own `team=lab` the
 * same label as the API's, any host could declare itself into a rule that waives or lowers its
 * drift. A rule trusts a host's word only where it says so (`"hostLabels":{"agent/team":"lab*"}`);
 * the API may set an `agent/` name too, and then its value wins.
 */
export function effectiveLabels(fromAgent: HostLabels, fromApi: HostLabels): Record<string, string> {
  const declared = Object.fromEntries(Object.entries(fromAgent).map(([name, value]) => [`${AGENT_LABEL_PREFIX}${name}`, value]));
  return { ...declared, ...fromApi };
}

/** `env=prod` from the agent's command line (`--label env=prod`, repeatable) into labels. */
export function parseLabelArgs(args: readonly string[], flag = '--label'): HostLabels {
  const labels: Record<string, string> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq <= 0) throw new QuicksandError('USAGE', `${flag}: expected NAME=VALUE like env=prod, got "${arg}"`);
    labels[arg.slice(0, eq)] = arg.slice(eq + 1);
  }
  const result = hostLabelsSchema.safeParse(labels);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const name = issue.path[0];
    throw new QuicksandError('USAGE', `${flag} ${name === undefined ? '' : `${String(name)}: `}${issue.message}`);
  }
  return result.data;
}
