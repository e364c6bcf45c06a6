// The server's JSON API: query strings it accepts (parsed with these schemas) and the shapes it
// answers with, so a client (CLI, web page, test) reads the same types the server writes.
import { z } from 'zod';

export const HOST_STATUSES = ['cattle', 'pet', 'stale'] as const;
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

export const alertsQuerySchema = z.strictObject({
  host: z.string().min(1).max(200).optional(),
});
export type AlertsQuery = z.infer<typeof alertsQuerySchema>;

export interface HostSummary {
  id: string;
  hostname: string;
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
  detail: unknown;
}

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
