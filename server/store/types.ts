// The store behind one small interface, so another backend (PostgreSQL) can take its place.
import type { ChangeSetDetail, ChangeSetSummary, HostDetail, HostFinding, HostStatusName, HostSummary, HostsQuery, ImageSummary, ApiRoleName, FindingsQuery } from '../../shared/api.js';
import type { Manifest } from '../../shared/manifest.js';
import type { HelloFrame, ReportFrame } from '../../shared/protocol.js';
import type { SinkStore, SqliteAlertQueue } from './alert-queue.js';
import type { Triage } from './triage.js';
import type { HeldAlerts } from './alerting.js';
import type { Maintenance } from './maintenance.js';
import type { Baselines } from './baselines.js';
import type { ContainerQueries } from './containers.js';

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
  createdAt: string;
  revokedAt: string | null;
}

export interface Credentials {
  /** Returns the secret's text; only its hash is kept. Without limits it never expires or runs out. */
  createEnrollSecret(now: Date, limits?: { expiresAt?: Date; maxUses?: number }): string;
  /**
   * Null when the secret is unknown, revoked, expired or used up; a use is counted.
   * `machineId`: the host's own /etc/machine-id.
   */
  enrollAgent(secret: string, hostname: string, now: Date, machineId?: string): { agentId: string; token: string } | null;
  listEnrollSecrets(now: Date): EnrollSecretInfo[];
  /** False when the id is unknown or already revoked. */
  revokeEnrollSecret(id: string, now: Date): boolean;
  listApiTokens(): ApiTokenInfo[];
  revokeApiToken(id: string, now: Date): boolean;
  authenticateAgent(token: string): AgentAuth;
  revokeAgent(agentId: string, now: Date): boolean;
  /** `name` says whose it is ("Q3 audit, Jane"): the audit log names the actor with it. */
  createApiToken(role: ApiRole, now: Date, name?: string): string;
  /** `tokenId` is the token's public id: who did what, in the audit log. */
  authenticateApiToken(token: string): { role: ApiRole; tokenId: string; name: string | null } | null;
}

export type IngestItem =
  | { type: 'report'; agentId: string; frame: ReportFrame; receivedAt: Date }
  | { type: 'hello'; agentId: string; frame: HelloFrame; receivedAt: Date }
  | { type: 'heartbeat'; agentId: string; outboxDepth: number; receivedAt: Date };

/** `stored`: a new report; `duplicate`: this (agent, seq) was stored before, nothing changed. */
export type IngestResult = { type: 'report'; seq: number; outcome: 'stored' | 'duplicate'; chainBroken: boolean } | { type: 'other' };

export interface Ingest {
  /** Writes all items in one transaction, in order; the results line up with the items. */
  ingestBatch(items: readonly IngestItem[]): IngestResult[];
}

export interface Queries {
  listHosts(query: HostsQuery, now: Date): HostSummary[];
  getHost(id: string, now: Date): Omit<HostDetail, 'connected'> | null;
  /** A host's findings with where triage stands on each (`now` decides whether an expiry passed). */
  listFindings(hostId: string, query: FindingsQuery, now: Date): HostFinding[] | null;
  /** The change sets (package manager runs) a host's reports named, oldest first; null: no such host. */
  listChangeSets(hostId: string): ChangeSetSummary[] | null;
  getChangeSet(hostId: string, id: string): ChangeSetDetail | null;
  listImages(): ImageSummary[];
  /** Reports stored for a host, oldest first (seq and hash): for tests and the history view. */
  listReports(hostId: string): { seq: number; hash: string; prevHash: string | null; kind: string; receivedAt: string }[];
  countHosts(now: Date): Record<HostStatusName, number>;
}

export interface ImageUploadResult {
  name: string;
  version: string;
  packages: number;
  files: number;
  /** True when it replaced an earlier upload of the same version. */
  replaced: boolean;
}

export type ObservationUploadResult = Omit<import('../../shared/baseline.js').BaselineSummary, 'accepted'>;

/** Uploads from their raw bytes: parsed, checked and stored (off the serving thread in the server). */
export interface Uploads {
  image(body: Uint8Array, now: Date): Promise<ImageUploadResult>;
  observation(req: { hostId: string; version: number; body: Uint8Array; now: Date }): Promise<ObservationUploadResult>;
}

export interface Images {
  /** Stores an image's manifest; true when it replaced an earlier upload of the same version. */
  saveManifest(manifest: Manifest, now: Date): boolean;
}

export interface Store extends Credentials, Ingest, Queries, ContainerQueries, Images, SinkStore {
  /** The durable alert queue (the delivery loop's port) and its records. */
  alertQueue: SqliteAlertQueue;
  /** What the throttle holds: let out when the window has room (the delivery loop calls it every round), and shown. */
  heldAlerts: { release(now: Date): string[]; list(hostId?: string): HeldAlerts[] };
  /** Approvals, re-baselines, rules, the audit log, and the schedules' writes. */
  triage: Triage;
  maintenance: Maintenance;
  /** Re-baseline versions as manifests: derived from the agent's observation, fetched by it. */
  baselines: Baselines;
  /** The uploads on this connection's thread (the server passes a worker's in their place). */
  uploads: Uploads;
  close(): void;
}
export type { Actor } from './triage.js';
