// The store behind one small interface, so another backend (PostgreSQL) can take its place.
import type { HostDetail, HostFinding, HostSummary, HostsQuery, ImageSummary, ApiRoleName, FindingsQuery } from '../../shared/api.js';
import type { Manifest } from '../../shared/manifest.js';
import type { HelloFrame, ReportFrame } from '../../shared/protocol.js';
import type { SinkStore, SqliteAlertQueue } from './alert-queue.js';
import type { Triage } from './triage.js';
import type { Maintenance } from './maintenance.js';
import type { Baselines } from './baselines.js';
import type { ContainerQueries } from './containers.js';

export type ApiRole = ApiRoleName;
export type AgentAuth = { ok: true; agentId: string } | { ok: false; reason: 'invalid' | 'revoked' };

export interface Credentials {
  /** Returns the secret's text; only its hash is kept. */
  createEnrollSecret(now: Date): string;
  /** Null when the secret is unknown or revoked. */
  enrollAgent(secret: string, hostname: string, now: Date): { agentId: string; token: string } | null;
  authenticateAgent(token: string): AgentAuth;
  revokeAgent(agentId: string, now: Date): boolean;
  createApiToken(role: ApiRole, now: Date): string;
  /** `tokenId` is the token's public id: who did what, in the audit log. */
  authenticateApiToken(token: string): { role: ApiRole; tokenId: string } | null;
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
  listImages(): ImageSummary[];
  /** Reports stored for a host, oldest first (seq and hash): for tests and the history view. */
  listReports(hostId: string): { seq: number; hash: string; prevHash: string | null; kind: string; receivedAt: string }[];
  countHosts(now: Date): Record<'cattle' | 'pet' | 'stale', number>;
}

export interface Images {
  /** Stores an image's manifest; true when it replaced an earlier upload of the same version. */
  saveManifest(manifest: Manifest, now: Date): boolean;
}

export interface Store extends Credentials, Ingest, Queries, ContainerQueries, Images, SinkStore {
  /** The durable alert queue (the delivery loop's port) and its records. */
  alertQueue: SqliteAlertQueue;
  /** Approvals, re-baselines, rules, the audit log, and the schedules' writes. */
  triage: Triage;
  maintenance: Maintenance;
  /** Re-baseline versions as manifests: derived from the agent's observation, fetched by it. */
  baselines: Baselines;
  close(): void;
}
