// The server's JSON API: query strings it accepts (parsed with these schemas) and the shapes it
// answers with, so a client (CLI, web page, test) reads the same types the server writes.
import { z } from 'zod';
import { hostLabelsSchema } from './labels.js';
import { parseDuration } from './duration.js';

// `enrolled`: has an identity but never reported; `stale`: reported, then stopped.
export const HOST_STATUSES = ['cattle', 'pet', 'stale', 'enrolled'] as const;
export type HostStatusName = (typeof HOST_STATUSES)[number];
export const API_ROLES = ['admin', 'analyst', 'auditor'] as const;
export type ApiRoleName = (typeof API_ROLES)[number];

export const hostsQuerySchema = z.strictObject({
  status: z.enum(HOST_STATUSES).optional(),
  image: z.string().min(1).max(200).optional(),
});
export type HostsQuery = z.infer<typeof hostsQuerySchema>;

export const findingsQuerySchema = z.strictObject({
  state: z.enum(['open', 'resolved', 'all']).default('open'),
});
export type FindingsQuery = z.infer<typeof findingsQuerySchema>;

/**
 * Where an alert stands. `planned`: no sink takes it (kept as a record, never sent); `held`: the
 * throttle holds it until its window has room; `pending`/`claimed`: queued for a sink, being
 * sent; `delivered`: the sink took it; `gave-up`: every attempt failed; `withdrawn`: nothing of
 * it needed anyone any more when its turn came.
 */
export const ALERT_DELIVERY_STATES = ['planned', 'pending', 'claimed', 'delivered', 'gave-up', 'withdrawn'] as const;
export const ALERT_STATES = [...ALERT_DELIVERY_STATES, 'held'] as const;

export const alertsQuerySchema = z.strictObject({
  host: z.string().min(1).max(200).optional(),
  state: z.enum(ALERT_STATES).optional(),
  // Pages, oldest first: `next` of one answer is the `cursor` of the next request (null: the last).
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().min(1).max(1000).optional(),
});
export type AlertsQuery = z.infer<typeof alertsQuerySchema>;

export interface HostSummary {
  id: string;
  hostname: string;
  /** The host's /etc/machine-id as it enrolled (or first said hello); null for an older agent. */
  machineId: string | null;
  /**
   * The hostname, told apart when other hosts share it: `web-1 (machine 3f2a9c01, agent 9e01b2c4)`,
   * the first digits of its machine-id (when known) and of its agent id.
   */
  displayName: string;
  status: HostStatusName;
  image: { name: string; version: string } | null;
  openFindings: number;
  driftScore: number;
  petSince: string | null;
  lastSeen: string | null;
  lastReportAt: string | null;
  revoked: boolean;
  /** The agent's realtime watch as its last report said (null before any report said). */
  watch: { state: 'ok' | 'degraded'; reason: string | null } | null;
  /** Labels in force (what rules match): what the API set, and the agent's own under `agent/`. */
  labels: Record<string, string>;
}

export interface HostDetail extends HostSummary {
  enrolledAt: string;
  os: string | null;
  agentVersion: string | null;
  lastSeq: number;
  outboxDepth: number;
  connected: boolean;
  counts: { critical: number; high: number; medium: number; low: number; info: number };
  reports: number;
  /** The re-baseline version the agent scans against (fetched, or said in its hello); null: its image's manifest. */
  baselineVersion: number | null;
  /** Where the labels come from: `PUT /hosts/:id/labels` and the agent's `run --label`. */
  labelSources: { api: Record<string, string>; agent: Record<string, string> };
}

/**
 * Where triage stands on a finding. `approved`: an analyst's approval (or a rule's auto-approval)
 * is in force; `approval-expired`: the approval's expiry passed, the change counts again;
 * `waived`: a suppress rule took it out of counting and alerting; `open`: nobody decided yet.
 */
export const TRIAGE_STATES = ['open', 'approved', 'waived', 'approval-expired'] as const;
export type TriageState = (typeof TRIAGE_STATES)[number];

export interface FindingTriage {
  state: TriageState;
  /** The approval that decides the state (the one in force, else the last expired one). */
  approval: {
    /** `finding`, `change-set`, `rebaseline`, or `rule` for an auto-approval. */
    kind: string;
    /** The API token id that approved (as in the audit log), or `rule:ID`. */
    by: string;
    reason: string;
    ticket: string | null;
    at: string;
    expiresAt: string | null;
    /** For an auto-approval: the maintenance window it happened in. */
    window?: string;
  } | null;
  /** The rule that waived it (suppress) or approved it (auto-approve). */
  waiver: { rule: string; action: 'suppress' | 'auto-approve'; ticket?: string; window?: string } | null;
}

export interface HostFinding {
  id: number;
  kind: string;
  severity: string;
  source: 'scan' | 'server';
  ecosystem: string | null;
  name: string | null;
  path: string | null;
  firstSeen: string;
  lastSeen: string;
  resolvedAt: string | null;
  triage: FindingTriage;
  /** The MITRE ATT&CK technique the change indicates (the finding's `attack`), or null. */
  attack: { id: string; name: string } | null;
  /** Who likely made a hand edit, with the evidence (the finding's `actor`), or null. */
  actor: { user?: string; evidence: Array<{ source: string; at: string; text: string }> } | null;
  /** The package manager run that explains it (its command as the tool recorded it), when the agent named one. */
  changeSet: { id: string; tool: string | null; command: string | null } | null;
  /**
   * For a config file under the policy's config paths: the unified diff of its text in the image
   * and on the host (`--- a/path`, `+++ b/path`, `@@` hunks; `/dev/null` for a side that does not
   * exist), secrets masked by the agent. Absent when there is none.
   */
  configDiff?: string;
  /** Why a config file has no diff (too large, binary, a secret file, ...), or that its diff was cut short. */
  configDiffNote?: string;
  detail: unknown;
}

/** One package manager run on a host (an apt command, an rpm transaction, a pip run), as its agent reported it. */
export interface ChangeSetDetail {
  id: string;
  tool: string;
  command: string | null;
  user: string | null;
  /** As the tool recorded them (local time for dpkg/apt logs). */
  start: string | null;
  end: string | null;
  ticket: string | null;
  /** When the server first saw it. */
  firstSeen: string;
  /** The package findings it explains (`resolved`: since approved away or undone). */
  packages: Array<{ kind: string; ecosystem: string | null; name: string | null; before: string | null; after: string | null; resolved: boolean }>;
  /** The paths it brought, changed or removed. */
  paths: string[];
}

/** In the list, `paths` is only their number. */
export type ChangeSetSummary = Omit<ChangeSetDetail, 'paths'> & { paths: number };

export interface ImageSummary {
  name: string;
  version: string;
  source: 'announced' | 'uploaded';
  firstSeen: string;
  lastSeen: string;
  hosts: number;
  /** Counts from the uploaded manifest; null for an image only announced by agents. */
  packages: number | null;
  files: number | null;
}

/** Approving a finding or a change set: a reason always, a ticket and an expiry when there are. */
export const approveBodySchema = z.strictObject({
  reason: z.string().max(16 * 1024).trim().min(1, 'a reason is required'),
  ticket: z.string().trim().min(1).max(200).optional(),
  // After it the change counts again (the host is a pet again unless it was undone).
  expiresAt: z.iso.datetime({ error: 'expected an ISO date-time like 2026-12-31T00:00:00Z' }).optional(),
});
export type ApproveBody = z.infer<typeof approveBodySchema>;

export const reasonBodySchema = z.strictObject({
  reason: z.string().max(16 * 1024).trim().min(1, 'a reason is required'),
  ticket: z.string().trim().min(1).max(200).optional(),
});
export type ReasonBody = z.infer<typeof reasonBodySchema>;

/** `PUT /hosts/:id/labels`: the labels the API sets on a host, replacing what it set before. */
export const labelsBodySchema = z.strictObject({
  labels: hostLabelsSchema,
  reason: z.string().trim().min(1).max(1000).optional(),
});
export type LabelsBody = z.infer<typeof labelsBodySchema>;

export const auditQuerySchema = z.strictObject({
  target: z.string().min(1).max(300).optional(),
  action: z.string().min(1).max(100).optional(),
  /** Who did it: a user's or token's name, or the actor id (`user:ana`, a token id, `system`). */
  actor: z.string().min(1).max(200).optional(),
  /** Entries about one host: its own and those of its findings and change sets (`host:ID/…`). */
  host: z.string().min(1).max(200).optional(),
  /** At or after `from`, before `to` (UTC, a date-time or a date). */
  from: z.union([z.iso.datetime(), z.iso.date()]).optional(),
  to: z.union([z.iso.datetime(), z.iso.date()]).optional(),
  /** The newest `limit` entries (older than `before` when given), oldest first within the page. */
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
  /** An entry id: only entries before it (the `older` cursor of the page before). */
  before: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
});
export type AuditQuery = z.infer<typeof auditQuerySchema>;

/** A page of the audit log: `older` is the `before` to ask for the entries before this page; null at the start. */
export interface AuditPage {
  entries: AuditEntry[];
  older: number | null;
}

export interface AuditEntry {
  id: number;
  at: string;
  /** The API token's id (`system` for the server's own schedules, `cli:USER` for the server CLI). */
  actor: string;
  /** The token's name given at `token create --name`, the OS user for the CLI; null when none. */
  actorName: string | null;
  /** admin, analyst, auditor; `system`, `agent`, or `cli` (someone with the database file). */
  role: string;
  action: string;
  target: string;
  reason: string | null;
  detail: unknown;
}

/**
 * `GET /api/v1/containers`: the fleet's containers. `image` matches the reference a container
 * was started from (`debian:bookworm`) or its image id; `drifted=true` keeps the pets; gone
 * containers are left out unless `gone=true`.
 */
export const containersQuerySchema = z.strictObject({
  image: z.string().min(1).max(512).optional(),
  status: z.enum(HOST_STATUSES).optional(),
  drifted: z.enum(['true', 'false']).optional(),
  gone: z.enum(['true', 'false']).optional(),
});
export type ContainersQuery = z.infer<typeof containersQuerySchema>;

/**
 * An agent's question for the manifest uploaded for a container image: `name` its reference
 * (compared normalized, `debian:qs` = `docker.io/library/debian:qs`), `version` its image id or
 * digest as the runtime names it (`sha256:…`).
 */
export const imageManifestQuerySchema = z.strictObject({
  name: z.string().min(1).max(512),
  version: z.string().min(1).max(200),
});

/**
 * A container of a container host, a child of that host with its own status and findings: its
 * findings and triage are those of the host id `id` (`/api/v1/hosts/:id/findings`, approvals).
 */
export interface ContainerSummary {
  id: string;
  host: { id: string; hostname: string };
  runtime: string;
  containerId: string;
  name: string | null;
  image: { ref: string | null; id: string | null };
  /** As the agent last saw it: running, stopped, unknown (not readable), gone (removed). */
  state: string;
  status: HostStatusName;
  openFindings: number;
  driftScore: number;
  petSince: string | null;
  firstSeen: string;
  lastSeen: string;
  goneAt: string | null;
}

export const MAX_SECRET_USES = 1_000_000;

/** `POST /api/v1/enroll-secrets`: both limits optional (`expires` a duration like `24h`). */
export const enrollSecretBodySchema = z.strictObject({
  expires: z.string().max(50).refine((d) => parseDuration(d) !== null, 'expected a duration like 24h, 7d or 1h30m').optional(),
  uses: z.number().int().min(1).max(MAX_SECRET_USES).optional(),
});

/** The compliance export's formats (server/export). */
export const EXPORT_FORMATS = ['csv', 'json', 'html', 'pdf', 'ocsf'] as const;

/** GET /api/v1/exports: the period, the scope (`all`, `image:NAME`, `label:KEY=VALUE`, `host:ID`) and the format. */
export const exportQuerySchema = z.strictObject({
  from: z.iso.datetime({ offset: true }),
  to: z.iso.datetime({ offset: true }),
  scope: z.string().max(300).default('all'),
  format: z.enum(EXPORT_FORMATS),
  signature: z.enum(['1']).optional(),
});
