import { z } from 'zod';
import { ECOSYSTEMS, FINDING_KINDS, SEVERITIES } from './findings.js';
import { QuicksandError } from './errors.js';
import { formatIssues } from './schema-errors.js';
import { packageRefSchema } from './manifest.js';
import { ticketIdSchema } from './ticket.js';
import { TECHNIQUE_ID } from './attack.js';
import { LIMITS, boundedArray, boundedRecord, boundedString, depthProblem } from './bounds.js';
import { MAX_CONFIG_TEXT_CHARS, TEXT_OMISSIONS } from './config-text.js';

import { REPORT_SCHEMA } from './summary.js';

export { REPORT_SCHEMA, emptyCounts, summarize } from './summary.js';

const attributes = boundedRecord(boundedString(), z.union([boundedString(LIMITS.path), z.number()]));
const absolutePath = boundedString(LIMITS.path).regex(/^\//, 'expected an absolute path');

export { packageRefSchema, type PackageRef } from './manifest.js';

/**
 * A config file's text on both sides of a finding, secrets already masked by the agent: `before`
 * as the manifest holds it (absent for an added file), `after` as the host holds it now (absent
 * for a removed one). Or why there is none. The server turns it into a unified diff.
 */
export const configTextSchema = z.union([
  z.strictObject({ before: boundedString(MAX_CONFIG_TEXT_CHARS).optional(), after: boundedString(MAX_CONFIG_TEXT_CHARS).optional() }),
  z.strictObject({ omitted: z.enum(TEXT_OMISSIONS), why: boundedString(1024) }),
]);
export type ConfigText = z.infer<typeof configTextSchema>;

/**
 * One difference between manifest and observation. `before`/`after` are versions for packages,
 * digests for content, and the changed attributes (mode, uid, type, ...) for metadata. `changes`
 * nests the file findings of a change set (the files a package install brought) under it.
 */
export const findingSchema = z.strictObject({
  kind: z.enum(FINDING_KINDS),
  severity: z.enum(SEVERITIES),
  ecosystem: z.enum(ECOSYSTEMS).optional(),
  name: boundedString().optional(),
  before: z.union([boundedString(LIMITS.path), attributes]).optional(),
  after: z.union([boundedString(LIMITS.path), attributes]).optional(),
  path: absolutePath.optional(),
  rawPath: z.base64().max(LIMITS.path * 2).optional(),
  owner: packageRefSchema.optional(),
  changeSet: boundedString().optional(),
  reason: boundedString(LIMITS.text).optional(),
  // The MITRE ATT&CK technique the change indicates (shared/attack.ts), where one does.
  attack: z.strictObject({ id: boundedString(20).regex(TECHNIQUE_ID, 'expected an ATT&CK id like "T1053.003"'), name: boundedString(200).min(1) }).optional(),
  // Who likely made a change no package operation explains, from the host's own records (sudo's
  // log, wtmp) and the file's ctime: evidence with its source, never certainty.
  actor: z
    .strictObject({
      user: boundedString(64).min(1).optional(),
      evidence: boundedArray(
        z.strictObject({ source: boundedString(256).min(1), at: z.iso.datetime({ offset: true }), text: boundedString(1024).min(1) }),
        8,
      ).min(1),
    })
    .optional(),
  // The change ticket the operator declared on the host when this report was made (top-level
  // findings only). The server keeps the ticket a change carried when it first saw it.
  ticket: ticketIdSchema.optional(),
  // A config file's text before and after (file findings under the policy's config paths).
  text: configTextSchema.optional(),
  get changes() {
    return boundedArray(findingSchema).optional();
  },
});
export type Finding = z.infer<typeof findingSchema>;

export const severityCountsSchema = z.strictObject({
  critical: z.number().int().nonnegative(),
  high: z.number().int().nonnegative(),
  medium: z.number().int().nonnegative(),
  low: z.number().int().nonnegative(),
  info: z.number().int().nonnegative(),
});
export type SeverityCounts = z.infer<typeof severityCountsSchema>;

/** A problem that did not stop the scan (an unreadable file, a vanished path). Never a finding. */
export const scanWarningSchema = z.strictObject({
  code: boundedString(100),
  path: boundedString(LIMITS.path).optional(),
  message: boundedString(LIMITS.text),
});
export type ScanWarning = z.infer<typeof scanWarningSchema>;

/**
 * What an `event` report covers. Its file findings are the complete truth for these paths and
 * nothing else: `paths` exactly, `subtrees` with everything below them. A receiver replaces what
 * it held for the paths in scope and keeps the rest. Package findings are present (and complete)
 * only when `packages` is true, i.e. the package databases were read again for this report; when
 * false, file findings that belong to a changed package stand alone with their `owner` set.
 */
export const reportScopeSchema = z.strictObject({
  paths: boundedArray(absolutePath),
  subtrees: boundedArray(absolutePath),
  packages: z.boolean(),
});
export type ReportScope = z.infer<typeof reportScopeSchema>;

/**
 * Whether the agent's realtime watcher covers the host. `degraded` (kernel watch limit reached,
 * watcher error) means only scheduled full scans see changes until watching works again.
 */
export const watchStateSchema = z.strictObject({
  state: z.enum(['ok', 'degraded']),
  reason: boundedString(LIMITS.text).optional(),
});
export type WatchState = z.infer<typeof watchStateSchema>;

/** A package manager operation that explains findings: one apt command, one rpm transaction, ... */
export const changeSetSchema = z.strictObject({
  id: boundedString(),
  tool: boundedString(100),
  start: boundedString(100).optional(),
  end: boundedString(100).optional(),
  command: boundedString(LIMITS.text).optional(),
  user: boundedString().optional(),
  packages: z.number().int().nonnegative(),
  ticket: ticketIdSchema.optional(),
});
export type ChangeSetInfo = z.infer<typeof changeSetSchema>;

/** The verdict and counts of one scan: of a report, and of each container in it. */
export const summarySchema = z.strictObject({
  // `drift` when any finding is above info: the host is a pet until someone approves it.
  // An event report's summary counts only its own findings, inside its scope.
  status: z.enum(['clean', 'drift']),
  // Per change set: the findings one apt command (or pip run, ...) caused count once, at their highest severity.
  counts: severityCountsSchema,
  findings: z.number().int().nonnegative(),
  files: z.number().int().nonnegative(),
  // Optional so reports of agents older than change sets still parse.
  changeSets: z.number().int().nonnegative().optional(),
});

export const CONTAINER_RUNTIMES = ['docker', 'podman', 'containerd'] as const;
export const MAX_CONTAINERS_PER_REPORT = 5000;

/**
 * One container of a container host, read from the host (its writable layer against its image's
 * layers): its own findings against its image. `gone`: it was discovered but had vanished by the
 * time it was read (removed meanwhile) — not an error, and not a clean container either.
 */
export const containerReportSchema = z.strictObject({
  runtime: z.enum(CONTAINER_RUNTIMES),
  id: boundedString(128).regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/, 'expected a container id'),
  name: boundedString(256).optional(),
  image: z.strictObject({
    ref: boundedString(512).optional(),
    id: boundedString(256).optional(),
  }),
  state: z.enum(['running', 'stopped', 'gone', 'unknown']),
  summary: summarySchema,
  findings: boundedArray(findingSchema, 100_000),
  changeSets: boundedArray(changeSetSchema, 10_000).optional(),
  warnings: boundedArray(scanWarningSchema, 10_000),
  stats: z
    .strictObject({ entries: z.number().int().nonnegative(), bytesRead: z.number().int().nonnegative(), durationMs: z.number().nonnegative() })
    .optional(),
});
export type ContainerReport = z.infer<typeof containerReportSchema>;

export const reportSchema = z.strictObject({
  schema: z.literal(REPORT_SCHEMA),
  // Absent on reports of older agents and of one-off `scan` runs: a full scan.
  scan: z.enum(['full', 'event']).optional(),
  scope: reportScopeSchema.optional(),
  watch: watchStateSchema.optional(),
  image: z.strictObject({ name: boundedString(), version: boundedString() }),
  host: z.strictObject({ hostname: boundedString(255), root: boundedString(LIMITS.path) }),
  scannedAt: z.iso.datetime(),
  summary: summarySchema,
  stats: z.strictObject({
    files: z.number().int().nonnegative(),
    packages: z.number().int().nonnegative(),
    bytesHashed: z.number().int().nonnegative(),
    durationMs: z.number().nonnegative(),
  }),
  findings: boundedArray(findingSchema),
  /** The change sets that findings name in `changeSet`. */
  changeSets: boundedArray(changeSetSchema, LIMITS.notes).optional(),
  warnings: boundedArray(scanWarningSchema, LIMITS.notes),
  /** A container host's containers, each against its own image (full scans only). */
  containers: boundedArray(containerReportSchema, MAX_CONTAINERS_PER_REPORT).optional(),
});
export type Report = z.infer<typeof reportSchema>;

export function parseReport(value: unknown, source: string): Report {
  const deep = depthProblem(value);
  if (deep !== null) throw new QuicksandError('REPORT_INVALID', `${source} is not a valid ${REPORT_SCHEMA} report: it ${deep}`);
  const result = reportSchema.safeParse(value);
  if (!result.success) {
    throw new QuicksandError('REPORT_INVALID', `${source} is not a valid ${REPORT_SCHEMA} report:\n${formatIssues(result.error)}`);
  }
  return result.data;
}
