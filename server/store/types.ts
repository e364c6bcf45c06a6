// The store behind one small asynchronous interface, so another backend (PostgreSQL, reached over
// a socket) can take the place of the embedded SQLite one. Every method returns a Promise: a
// backend that answers synchronously (better-sqlite3) is wrapped by `asyncPort` (async-adapter.ts).
import type { ALERT_DELIVERY_STATES, AuditEntry, AuditPage, AuditQuery, ChangeSetDetail, ChangeSetSummary, ContainerSummary, ContainersQuery, HostDetail, HostFinding, HostStatusName, HostSummary, HostsQuery, ImageSummary, ApiRoleName, FindingsQuery } from '../../shared/api.js';
import type { AlertSink } from '../../shared/alerts.js';
import type { BaselineSummary, HostBaseline } from '../../shared/baseline.js';
import type { Manifest } from '../../shared/manifest.js';
import type { CommandFrame, HelloFrame, ReportFrame } from '../../shared/protocol.js';
import type { HostLabels } from '../../shared/labels.js';
import type { RuleSet } from '../../shared/rules.js';
import type { Severity } from '../../shared/findings.js';
import type { Alert } from '../alerts/alert.js';
import type { AlertQueueStore } from '../alerts/queue.js';

export type ApiRole = ApiRoleName;
export type AgentAuth = { ok: true; agentId: string } | { ok: false; reason: 'invalid' | 'revoked' };

/** An enrolment secret as `enroll-secret list` shows it (never its text). */
export interface EnrollSecretInfo {
  id: string;
  createdAt: string;
  expiresAt: string | null;
  maxUses: number | null;
  uses: number;
  revokedAt: string | null;
  state: 'active' | 'expired' | 'used-up' | 'revoked';
}

/** An API token as `token list` shows it (never its text). */
export interface ApiTokenInfo {
  id: string;
  role: ApiRole;
  /** The name given at `token create --name`; null without one. */
  name: string | null;
  /** The console user it belongs to (`token create --user`): it carries that user's role. */
  user: string | null;
  createdAt: string;
  revokedAt: string | null;
}

export interface Credentials {
  /** Returns the secret's text; only its hash is kept. Without limits it never expires or runs out. */
  createEnrollSecret(now: Date, limits?: { expiresAt?: Date; maxUses?: number }): Promise<string>;
  /**
   * Null when the secret is unknown, revoked, expired or used up; a use is counted.
   * `machineId`: the host's own /etc/machine-id.
   */
  enrollAgent(secret: string, hostname: string, now: Date, machineId?: string): Promise<{ agentId: string; token: string } | null>;
  listEnrollSecrets(now: Date): Promise<EnrollSecretInfo[]>;
  /** False when the id is unknown or already revoked. */
  revokeEnrollSecret(id: string, now: Date): Promise<boolean>;
  listApiTokens(): Promise<ApiTokenInfo[]>;
  revokeApiToken(id: string, now: Date): Promise<boolean>;
  authenticateAgent(token: string): Promise<AgentAuth>;
  revokeAgent(agentId: string, now: Date): Promise<boolean>;
  /** `name` says whose it is ("Q3 audit, Jane"): the audit log names the actor with it. */
  createApiToken(role: ApiRole, now: Date, name?: string): Promise<string>;
  /**
   * A token of a console user: it carries the user's role (as it is when used), stops working
   * while the user is disabled, and the audit log names the user. Null: no such user.
   */
  createUserToken(user: string, now: Date, name?: string): Promise<string | null>;
  /** `tokenId` is the token's public id: who did what, in the audit log; `user` its user, if any. */
  authenticateApiToken(token: string): Promise<{ role: ApiRole; tokenId: string; name: string | null; user: string | null } | null>;
}

/** A console user as lists show it (never the hash). */
export interface UserInfo {
  name: string;
  role: ApiRole;
  createdAt: string;
  passwordChangedAt: string;
  disabledAt: string | null;
  lastLoginAt: string | null;
}

/** What a valid session cookie stands for. */
export interface SessionUser {
  /** The session's public id (the part between the dots); the secret is never stored. */
  sessionId: string;
  user: string;
  role: ApiRole;
  /** The synchronizer token every form of this session carries. */
  csrf: string;
  createdAt: string;
  expiresAt: string;
}

/** One counter of failed logins: `account:NAME` or `address:IP`, locked after `max` failures. */
export interface LoginKey {
  key: string;
  max: number;
}

/**
 * Console users, their sessions, and the throttle of failed logins. Passwords are hashed by the
 * caller (server/passwords.ts: scrypt is slow and asynchronous); the store keeps the hash string.
 */
export interface Users {
  /** False when a user of that name exists. */
  createUser(req: { name: string; role: ApiRole; passwordHash: string; now: Date }): Promise<boolean>;
  listUsers(): Promise<UserInfo[]>;
  /** The user with the hash, for a login check; null when unknown. */
  userForLogin(name: string): Promise<(UserInfo & { passwordHash: string }) | null>;
  /** Disables a user (their sessions end) or enables them again; false when unknown or already so. */
  setUserDisabled(name: string, disabled: boolean, now: Date): Promise<boolean>;
  /**
   * Gives a user another role, which their sessions and API tokens carry from their next request
   * (both read the user's role as it is). The role it had, or null when unknown; unchanged when
   * it already had that role.
   */
  setUserRole(name: string, role: ApiRole): Promise<ApiRole | null>;
  /** Replaces the hash; every session of the user ends. False when unknown. */
  setPassword(name: string, passwordHash: string, now: Date): Promise<boolean>;
  /**
   * A new session (`qss.ID.SECRET`, only a hash kept), noting the login; `replaces`: the cookie the
   * browser came with, which ends here (a session id from before the login never lives on).
   */
  createSession(req: { user: string; now: Date; idleMs: number; absoluteMs: number; replaces?: string }): Promise<{ token: string; session: SessionUser }>;
  /** The session's user, its last use noted; null when unknown, idle or past its end, or the user is disabled. */
  authenticateSession(token: string, now: Date): Promise<SessionUser | null>;
  /** Ends a session (logout); false when it was not there. */
  deleteSession(token: string): Promise<boolean>;
  /** The time the first locked key is locked until (ISO), or null when none is locked at `now`. */
  loginLockedUntil(keys: readonly string[], now: Date): Promise<string | null>;
  /**
   * Counts a failure on each key within `windowMs`; returns the keys this failure locked (for
   * `lockMs`), which the caller records in the audit log.
   */
  noteLoginFailure(req: { keys: readonly LoginKey[]; now: Date; windowMs: number; lockMs: number }): Promise<string[]>;
  clearLoginFailures(keys: readonly string[]): Promise<void>;
}

export type IngestItem =
  | { type: 'report'; agentId: string; frame: ReportFrame; receivedAt: Date }
  | { type: 'hello'; agentId: string; frame: HelloFrame; receivedAt: Date }
  | { type: 'heartbeat'; agentId: string; outboxDepth: number; receivedAt: Date };

/** `stored`: a new report; `duplicate`: this (agent, seq) was stored before, nothing changed. */
export type IngestResult = { type: 'report'; seq: number; outcome: 'stored' | 'duplicate'; chainBroken: boolean } | { type: 'other' };

export interface Ingest {
  /** Writes all items in one transaction, in order; the results line up with the items. */
  ingestBatch(items: readonly IngestItem[]): Promise<IngestResult[]>;
}

export interface IngestHealth {
  ok: boolean;
  /** What is wrong, for /healthz: the writer is down, or the database cannot be written. */
  problems: string[];
}

/** The ingest port the stream writes through (SQLite: its own writer thread); closed at shutdown. */
export interface IngestPort extends Ingest {
  /** Whether the writer is up and can write to the database now. */
  health(): Promise<IngestHealth>;
  close(): Promise<void>;
}

export interface Queries {
  listHosts(query: HostsQuery, now: Date): Promise<HostSummary[]>;
  getHost(id: string, now: Date): Promise<Omit<HostDetail, 'connected'> | null>;
  /** A host's findings with where triage stands on each (`now` decides whether an expiry passed). */
  listFindings(hostId: string, query: FindingsQuery, now: Date): Promise<HostFinding[] | null>;
  /** The change sets (package manager runs) a host's reports named, oldest first; null: no such host. */
  listChangeSets(hostId: string): Promise<ChangeSetSummary[] | null>;
  getChangeSet(hostId: string, id: string): Promise<ChangeSetDetail | null>;
  listImages(): Promise<ImageSummary[]>;
  /** Reports stored for a host, oldest first (seq and hash): for tests and the history view. */
  listReports(hostId: string): Promise<{ seq: number; hash: string; prevHash: string | null; kind: string; receivedAt: string }[]>;
  countHosts(now: Date): Promise<Record<HostStatusName, number>>;
  /** Each host's most severe finding that counts (open, not waived, not approved at `now`): the console's severity filter. Hosts without one are left out. */
  worstSeverities(now: Date): Promise<Record<string, string>>;
  /** The console's fleet: a page of the hosts the query keeps (not containers), ordered by hostname then id. */
  fleetHosts(query: FleetQuery, at: FleetPageAt, now: Date): Promise<HostSummary[]>;
  /** How many hosts the query keeps. */
  fleetCount(query: FleetQuery, now: Date): Promise<number>;
  /** Each status's count over the fleet and the image cohorts (the `cohorts` with most pets), from aggregates. */
  fleetSummary(now: Date, cohorts: number): Promise<{ counts: Record<HostStatusName, number>; cohorts: CohortRow[] }>;
  /** For the trend: the pets now (stored status) and, per UTC day from `since`'s, pets gained less pets lost (the status history). */
  petChanges(since: Date): Promise<{ petsNow: number; deltas: Array<{ day: string; delta: number }> }>;
  /** A host's status changes, the newest `limit`, oldest first; null: no such host. */
  statusHistory(hostId: string, limit: number): Promise<StatusChange[] | null>;
  /**
   * A page of a host's open findings grouped by change set: sets in the order of their first
   * finding, each set's findings by id, those no change set explains last. Null: no such host.
   */
  pageOpenFindings(hostId: string, at: { offset: number; limit: number }, now: Date): Promise<{ findings: HostFinding[]; total: number } | null>;
  /** The audit entries of a host and of its findings and change sets (`host:ID`, `host:ID/…`), the newest `limit`, oldest first. */
  hostAudit(hostId: string, limit: number): Promise<AuditEntry[]>;
}

/** The fleet page's filters (see server/web/fleet-view.ts, which parses them from the URL). */
export interface FleetQuery {
  status?: HostStatusName | undefined;
  image?: string | undefined;
  version?: string | undefined;
  /** `KEY=VALUE`, or `KEY` for any value. */
  label?: string | undefined;
  /** The host's most severe counting finding is at least this. */
  severity?: Severity | undefined;
  watch?: 'degraded' | undefined;
  /** Text in the hostname, id, image, version or a label (ASCII letters case folded). */
  q?: string | undefined;
}

/** Where a page of the fleet starts: at an offset (a page number), or after a host's key (the CSV, page by page). */
export interface FleetPageAt {
  limit: number;
  offset?: number;
  after?: { hostname: string; id: string };
}

/** Hosts of one image version, and how many are pets. No image: `(no image)`, version ''. */
export interface CohortRow {
  image: string;
  version: string;
  hosts: number;
  pets: number;
}

export interface ImageUploadResult {
  name: string;
  version: string;
  packages: number;
  files: number;
  /** True when it replaced an earlier upload of the same version. */
  replaced: boolean;
}

export type ObservationUploadResult = Omit<BaselineSummary, 'accepted'>;

/** Uploads from their raw bytes: parsed, checked and stored (off the serving thread in the server). */
export interface Uploads {
  image(body: Uint8Array, now: Date): Promise<ImageUploadResult>;
  observation(req: { hostId: string; version: number; body: Uint8Array; now: Date }): Promise<ObservationUploadResult>;
}

export interface ContainerQueries {
  /** A host's containers; null when the host is not known. */
  hostContainers(hostId: string, now: Date): Promise<ContainerSummary[] | null>;
  /** The fleet's containers: "which containers of image X drifted, on which hosts". */
  listContainers(query: ContainersQuery, now: Date): Promise<ContainerSummary[]>;
}

export interface Images {
  /** Stores an image's manifest; true when it replaced an earlier upload of the same version. */
  saveManifest(manifest: Manifest, now: Date): Promise<boolean>;
  /**
   * The manifest uploaded for an image version, as stored (JSON text: it was parsed at upload);
   * null when none was uploaded. `name` is compared as stored: callers normalize image references.
   */
  uploadedManifest(name: string, version: string): Promise<string | null>;
}

export interface SinkStore {
  /** True when it replaced a sink of the same id. */
  saveSink(sink: AlertSink, now: Date): Promise<boolean>;
  listSinks(): Promise<AlertSink[]>;
  deleteSink(id: string): Promise<boolean>;
}

export interface DeliveryRow {
  id: string;
  /** Null for a `planned` alert no sink took. */
  sinkId: string | null;
  hostId: string | null;
  action: string;
  dedupKey: string;
  /** See ALERT_DELIVERY_STATES. */
  state: (typeof ALERT_DELIVERY_STATES)[number];
  /** Why a `planned` alert went nowhere. */
  reason: string | null;
  attempts: number;
  nextAttemptAt: number;
  createdAt: string;
  alert: Alert;
}

export interface AttemptRow {
  deliveryId: string;
  sinkId: string;
  attempt: number;
  at: number;
  ok: boolean;
  status: number | null;
  error: string | null;
  result: string;
  nextAttemptAt: number | null;
}

/** The durable alert queue (the delivery loop's port) and its records, for the API. */
export interface AlertQueue extends AlertQueueStore {
  listDeliveries(hostId?: string, state?: DeliveryRow['state']): Promise<DeliveryRow[]>;
  /** One page, oldest first: at most `limit` deliveries after the cursor `after` (`next` of the page before). */
  pageDeliveries(query: { hostId?: string | undefined; state?: DeliveryRow['state'] | undefined; limit: number; after?: string | undefined }): Promise<{
    deliveries: DeliveryRow[];
    next: string | null;
  }>;
  listAttempts(deliveryId?: string): Promise<AttemptRow[]>;
  /** The attempts of many deliveries in one query, by delivery id. */
  attemptsOf(deliveryIds: readonly string[]): Promise<Map<string, AttemptRow[]>>;
}

/** What the alert throttle holds for one host: why, until when, and a sample of it. */
export interface HeldAlerts {
  hostId: string;
  state: 'held';
  reason: string;
  /** When it goes out (ISO), with no further report needed. */
  until: string;
  changeSets: number;
  /** A sample of what it holds (the whole backlog is on the host's findings). */
  findings: Array<{ kind: string; severity: string; name?: string; path?: string }>;
}

/** What the throttle holds: let out when the window has room (the delivery loop calls it every round), and shown. */
export interface HeldAlertQueue {
  /** Lets out what is due for every host whose window has room again; returns those hosts. */
  release(now: Date): Promise<string[]>;
  list(hostId?: string): Promise<HeldAlerts[]>;
}

/** Why a host's stored status changed (the status history's `cause`). */
export const STATUS_CAUSES = ['report', 'hello', 'labels', 'approval', 'reopen', 'rebaseline', 'rules', 'expiry', 'stale', 'migration'] as const;
export type StatusCause = (typeof STATUS_CAUSES)[number];

/** Why, and who: a user's name or a token's id for triage, `system` for the schedules, null for the agent's own report. */
export interface StatusWhy {
  cause: StatusCause;
  actor: string | null;
}

/** One change of a host's stored status, as the history keeps it. `from` null: its first known status (a migration's seed). */
export interface StatusChange {
  id: number;
  hostId: string;
  from: HostStatusName | null;
  to: HostStatusName;
  at: string;
  cause: StatusCause;
  actor: string | null;
}

/** Who acted, as the status history names them. */
export const actorOf = (a: Actor): string => a.name ?? a.id;

export interface Actor {
  id: string;
  role: string;
  name?: string | null;
}

/**
 * Approvals, re-baselines, rules, the audit log, and the schedules' writes. Each act is one
 * transaction that also appends to the audit log and counts the host again.
 */
export interface Triage {
  approve(req: { hostId: string; findingIds?: number[]; changeSet?: string; reason: string; ticket?: string; expiresAt?: string; actor: Actor; now: Date }): Promise<{ approved: number[]; status: 'cattle' | 'pet' }>;
  reopen(req: { hostId: string; findingId: number; reason: string; actor: Actor; now: Date }): Promise<{ reopened: number; status: 'cattle' | 'pet' }>;
  /**
   * Accepts every open change and opens the host's next baseline version, awaiting the agent's
   * observation to become a manifest (see Baselines).
   */
  rebaseline(req: { hostId: string; reason: string; ticket?: string; actor: Actor; now: Date }): Promise<{ version: number; accepted: number; status: 'cattle' | 'pet'; state: 'awaiting-observation' }>;
  saveRules(req: { set: RuleSet; actor: Actor; reason?: string; now: Date }): Promise<{ version: number }>;
  /** Replaces the labels the API set on a host; its open findings are decided again at once. */
  setLabels(req: { hostId: string; labels: HostLabels; reason?: string; actor: Actor; now: Date }): Promise<{ labels: HostLabels; api: HostLabels; agent: HostLabels; status: 'cattle' | 'pet' }>;
  currentRules(): Promise<{ version: number; set: unknown } | null>;
  /** Approvals whose expiry passed: noted, audited, their hosts counted again. */
  expireApprovals(now: Date): Promise<{ expired: number; hosts: string[] }>;
  /** Hosts whose last report is older than `before` and not marked stale yet: marked, audited. */
  markStale(before: Date, now: Date): Promise<string[]>;
  audit(entry: AuditRecord): Promise<void>;
  /** The newest entries (before `query.before`), oldest first, with the cursor to the older ones. */
  listAudit(query: AuditQuery): Promise<AuditPage>;
}

export interface AuditRecord {
  actor: Actor;
  action: string;
  target: string;
  reason?: string | null;
  detail?: unknown;
  now: Date;
}

export interface Maintenance {
  /** Reports and resolved findings older than `before` go; what the chain or an approval needs stays. */
  prune(before: Date): Promise<{ reports: number; findings: number; alerts: number }>;
}

/** A host's baseline versions as manifests: derived from the agent's observation, fetched by it. */
export interface Baselines {
  /** Derives version `version` from the agent's upload; the version is then ready to fetch. */
  receiveObservation(req: { hostId: string; version: number; baseline: number | null; observation: Manifest; expected: Manifest; now: Date }): Promise<BaselineSummary>;
  list(hostId: string): Promise<BaselineSummary[] | null>;
  get(hostId: string, version: number): Promise<(BaselineSummary & { manifest: Manifest | null }) | null>;
  /**
   * The latest ready version of the image the host runs now, as the agent fetches it; null when
   * there is none. Fetching notes it as the version the host scans against until its agent says
   * otherwise in a hello.
   */
  fetch(hostId: string): Promise<HostBaseline | null>;
  /**
   * What a host's agent must do when it connects: upload for a version awaiting it, fetch a newer
   * one of the image it says it runs (`image`; null: the one it announced last).
   */
  commandsFor(hostId: string, agentBaseline: number | undefined, image: { name: string; version: string } | null): Promise<Array<Omit<CommandFrame, 'type'>>>;
}

/** What a node may be asked to do for an agent whose socket it holds: a frame to send, or `disconnect` (its token was revoked). */
export type AgentCommandName = CommandFrame['command'] | 'disconnect';

/** A command for an agent, as a row: whichever node holds the agent's socket delivers it. */
export interface AgentCommandRow {
  id: number;
  agentId: string;
  command: AgentCommandName;
  baseline: number | null;
  createdAt: string;
}

/** Which node holds an agent's socket, and when that node last said it still does. */
export interface AgentSession {
  agentId: string;
  nodeId: string;
  connectedAt: string;
  seenAt: string;
}

/** Told the ids of queued commands (any node's); `resync`: announcements may have been missed. */
export interface CommandListener {
  command(id: number): void;
  resync(): void;
}

/**
 * Several server nodes on one database: which node holds which agent's socket, commands as rows
 * delivered by that node, and leases so a job runs on one node at a time.
 */
export interface Cluster {
  /** Answers when the database does (a node's /healthz); rejects when it cannot be reached. */
  ping(): Promise<void>;
  /** This node holds these agents' sockets now (replacing whatever node held them). */
  openSessions(agentIds: readonly string[], nodeId: string, now: Date): Promise<void>;
  /** The socket closed: the node's own row goes, never one another node wrote since. */
  closeSession(agentId: string, nodeId: string): Promise<void>;
  /** Every session of a node goes (it starts again, or stops). */
  clearSessions(nodeId: string): Promise<void>;
  /**
   * The node is alive: its sessions are seen now. Sessions not seen since `expireBefore` (a node
   * that died) go, and so do commands delivered or expired before it. Returns the sessions that went.
   */
  heartbeat(nodeId: string, now: Date, expireBefore: Date): Promise<number>;
  /** Where the agent's socket is; null when no node holds it (or its node was not seen since `liveAfter`). */
  sessionOf(agentId: string, liveAfter: Date): Promise<AgentSession | null>;
  listSessions(liveAfter: Date): Promise<AgentSession[]>;
  /** Queues a command and announces its id to every node's listener (on commit). */
  queueCommand(req: { agentId: string; command: AgentCommandName; baseline?: number; now: Date; expiresAt: Date }): Promise<AgentCommandRow>;
  /** A command by id while it is neither delivered nor expired; else null. */
  pendingCommand(id: number, now: Date): Promise<AgentCommandRow | null>;
  /** These agents' commands neither delivered nor expired, oldest first. */
  pendingCommandsFor(agentIds: readonly string[], now: Date): Promise<AgentCommandRow[]>;
  /** Marks a command delivered by `nodeId`; false when it was delivered already (by another node). */
  claimCommand(id: number, nodeId: string, now: Date): Promise<boolean>;
  /** Listens to queued commands' ids until `close`; in-process for SQLite, LISTEN/NOTIFY for PostgreSQL. */
  listenCommands(listener: CommandListener): Promise<{ close(): Promise<void> }>;
  /**
   * Takes the lease `name` for `holder` until `now + ttlMs`, or renews it when `holder` has it;
   * false while another holder's lease runs.
   */
  acquireLease(name: string, holder: string, now: Date, ttlMs: number): Promise<boolean>;
  releaseLease(name: string, holder: string): Promise<void>;
}

/** Which hosts an export covers: all, those of an image, those with a label, or one. */
export type ExportScope = { kind: 'all' } | { kind: 'image'; name: string } | { kind: 'label'; key: string; value: string } | { kind: 'host'; id: string };

/** A host as an export names it (containers are left out, as in host lists). */
export interface ExportHostRow {
  id: string;
  hostname: string;
  machineId: string | null;
  enrolledAt: string;
  revokedAt: string | null;
  image: { name: string; version: string } | null;
  /** The server baseline version the agent said it scans against; null: the image's manifest. */
  baselineVersion: number | null;
  labels: Record<string, string>;
  /** As stored (stale is decided at read time from lastReportAt). */
  status: HostStatusName;
  lastReportAt: string | null;
  watch: { state: 'ok' | 'degraded'; reason: string | null } | null;
}

/** One stored report, without its body: when it was scanned and received, and the watch state it carried. */
export interface ExportReportRow {
  id: number;
  seq: number;
  kind: 'full' | 'event';
  scannedAt: string;
  receivedAt: string;
  /** Null: the report said nothing of a watcher (a one-shot scan). */
  watch: { state: 'ok' | 'degraded'; reason: string | null } | null;
}

/** A finding row with what triage needs to say its disposition; `detail` as the agent sent it. */
export interface ExportFindingRow {
  id: number;
  hostId: string;
  kind: string;
  severity: string;
  source: 'scan' | 'server';
  ecosystem: string | null;
  name: string | null;
  path: string | null;
  firstSeen: string;
  lastSeen: string;
  resolvedAt: string | null;
  /** A rule waived it (suppressed or auto-approved); `decision` names the rule. */
  waived: boolean;
  decision: unknown;
  /** The change ticket the finding carried when first seen. */
  ticket: string | null;
  changeSet: string | null;
  /** The identity of the change's current state: an approval counts only for this one. */
  identity: string | null;
  detail: Record<string, unknown>;
}

/** Every approval of a finding, in force or not, with the baseline version a re-baseline opened. */
export interface ExportApprovalRow {
  id: number;
  findingId: number;
  identity: string;
  kind: 'finding' | 'change-set' | 'rebaseline';
  reason: string;
  ticket: string | null;
  expiresAt: string | null;
  createdAt: string;
  /** The API token's id (or `cli:USER`, `system`) and the token's name when it has one. */
  createdBy: string;
  createdByName: string | null;
  reopenedAt: string | null;
  reopenedBy: string | null;
  /** When the expiry schedule noticed expiresAt passed. */
  expiredAt: string | null;
  /** For kind `rebaseline`: the host baseline version that re-baseline opened. */
  baselineVersion: number | null;
}

export interface ExportChangeSetRow {
  hostId: string;
  id: string;
  tool: string;
  command: string | null;
  user: string | null;
  start: string | null;
  end: string | null;
  packages: number;
  ticket: string | null;
  firstSeen: string;
  lastSeen: string;
}

/** What an expected state a host is held to: the manifest's digest and policy, without its files. */
export interface ExportManifestRow {
  image: { name: string; version: string };
  /** Null: the image's uploaded manifest; else the host's baseline version. */
  baselineVersion: number | null;
  /** sha256 (hex) of the manifest as the server stores it. */
  sha256: string;
  policy: { tracked: string[]; ignored: string[]; mutable: string[] } | null;
  packages: number | null;
  files: number | null;
}

/**
 * The reads of the compliance export. Everything that grows with history comes in pages keyed by
 * id (`after`: the last id of the page before), so an export never holds more than a page.
 */
export interface ExportQueries {
  /** Hosts in scope, by id. */
  pageHosts(query: { scope: ExportScope; after?: string | undefined; limit: number }): Promise<ExportHostRow[]>;
  /** A host's reports received in [from, to], by id. */
  pageReports(query: { hostId: string; from: Date; to: Date; after?: number | undefined; limit: number }): Promise<ExportReportRow[]>;
  /** A host's last report received before `before` (of `kind` when given): where the period starts from. */
  reportBefore(query: { hostId: string; before: Date; kind?: 'full' | undefined }): Promise<ExportReportRow | null>;
  /** A host's findings first seen by `to` and not resolved before `from` (open during the period), by id. */
  pageFindings(query: { hostId: string; from: Date; to: Date; after?: number | undefined; limit: number }): Promise<ExportFindingRow[]>;
  /** Every approval of these findings (reopened and expired ones too), oldest first, by finding id. */
  approvalsOf(findingIds: readonly number[]): Promise<Map<number, ExportApprovalRow[]>>;
  /** A host's change sets seen during [from, to], by id. */
  pageChangeSets(query: { hostId: string; from: Date; to: Date; after?: string | undefined; limit: number }): Promise<ExportChangeSetRow[]>;
  /** The manifest an image version or a host's baseline version holds; null: none stored (or not ready). */
  manifest(query: { image: { name: string; version: string } } | { hostId: string; baselineVersion: number }): Promise<ExportManifestRow | null>;
}

export interface Store extends Credentials, Users, Ingest, Queries, ContainerQueries, Images, SinkStore {
  exports: ExportQueries;
  cluster: Cluster;
  alertQueue: AlertQueue;
  heldAlerts: HeldAlertQueue;
  triage: Triage;
  maintenance: Maintenance;
  baselines: Baselines;
  /** The uploads on this connection's thread (the server passes a worker's in their place). */
  uploads: Uploads;
  close(): Promise<void>;
}
