import { z } from 'zod';
import { ECOSYSTEMS, FINDING_KINDS, SEVERITIES } from './findings.js';
import { QuicksandError } from './errors.js';
import { formatIssues } from './schema-errors.js';
import { packageRefSchema } from './manifest.js';
import { ticketIdSchema } from './ticket.js';

import { REPORT_SCHEMA } from './summary.js';

export { REPORT_SCHEMA, emptyCounts, summarize } from './summary.js';

const attributes = z.record(z.string(), z.union([z.string(), z.number()]));

export { packageRefSchema, type PackageRef } from './manifest.js';

/**
 * One difference between manifest and observation. `before`/`after` are versions for packages,
 * digests for content, and the changed attributes (mode, uid, type, ...) for metadata. `changes`
 * nests the file findings of a change set (the files a package install brought) under it.
 */
export const findingSchema = z.strictObject({
  kind: z.enum(FINDING_KINDS),
  severity: z.enum(SEVERITIES),
  ecosystem: z.enum(ECOSYSTEMS).optional(),
  name: z.string().optional(),
  before: z.union([z.string(), attributes]).optional(),
  after: z.union([z.string(), attributes]).optional(),
  path: z.string().regex(/^\//, 'expected an absolute path').optional(),
  rawPath: z.base64().optional(),
  owner: packageRefSchema.optional(),
  changeSet: z.string().optional(),
  reason: z.string().optional(),
  // The change ticket the operator declared on the host when this report was made (top-level
  // findings only). The server keeps the ticket a change carried when it first saw it.
  ticket: ticketIdSchema.optional(),
  get changes() {
    return z.array(findingSchema).optional();
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
  code: z.string(),
  path: z.string().optional(),
  message: z.string(),
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
  paths: z.array(z.string().regex(/^\//, 'expected an absolute path')),
  subtrees: z.array(z.string().regex(/^\//, 'expected an absolute path')),
  packages: z.boolean(),
});
export type ReportScope = z.infer<typeof reportScopeSchema>;

/**
 * Whether the agent's realtime watcher covers the host. `degraded` (kernel watch limit reached,
 * watcher error) means only scheduled full scans see changes until watching works again.
 */
export const watchStateSchema = z.strictObject({
  state: z.enum(['ok', 'degraded']),
  reason: z.string().optional(),
});
export type WatchState = z.infer<typeof watchStateSchema>;

/** A package manager operation that explains findings: one apt command, one rpm transaction, ... */
export const changeSetSchema = z.strictObject({
  id: z.string(),
  tool: z.string(),
  start: z.string().optional(),
  end: z.string().optional(),
  command: z.string().optional(),
  user: z.string().optional(),
  packages: z.number().int().nonnegative(),
  ticket: ticketIdSchema.optional(),
});
export type ChangeSetInfo = z.infer<typeof changeSetSchema>;

const summarySchema = z.strictObject({
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
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/, 'expected a container id'),
  name: z.string().max(256).optional(),
  image: z.strictObject({
    ref: z.string().max(512).optional(),
    id: z.string().max(256).optional(),
  }),
  state: z.enum(['running', 'stopped', 'gone', 'unknown']),
  summary: summarySchema,
  findings: z.array(findingSchema).max(100_000),
  changeSets: z.array(changeSetSchema).max(10_000).optional(),
  warnings: z.array(scanWarningSchema).max(10_000),
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
  image: z.strictObject({ name: z.string(), version: z.string() }),
  host: z.strictObject({ hostname: z.string(), root: z.string() }),
  scannedAt: z.iso.datetime(),
  summary: summarySchema,
  stats: z.strictObject({
    files: z.number().int().nonnegative(),
    packages: z.number().int().nonnegative(),
    bytesHashed: z.number().int().nonnegative(),
    durationMs: z.number().nonnegative(),
  }),
  findings: z.array(findingSchema),
  /** The change sets that findings name in `changeSet`. */
  changeSets: z.array(changeSetSchema).optional(),
  warnings: z.array(scanWarningSchema),
  /** A container host's containers, each against its own image (full scans only). */
  containers: z.array(containerReportSchema).max(MAX_CONTAINERS_PER_REPORT).optional(),
});
export type Report = z.infer<typeof reportSchema>;

export function parseReport(value: unknown, source: string): Report {
  const result = reportSchema.safeParse(value);
  if (!result.success) {
    throw new QuicksandError('REPORT_INVALID', `${source} is not a valid ${REPORT_SCHEMA} report:\n${formatIssues(result.error)}`);
  }
  return result.data;
}
