// Containers as children of their host: the rows that say whose a container is and what it runs,
// and the fleet's view of them. Their findings and status live in their own hosts row.
import { createHash } from 'node:crypto';
import type { Database as Db } from 'better-sqlite3';
import type { ContainerSummary } from '../../shared/api.js';
import type { Synchronous } from './async-adapter.js';
import type { ContainerQueries } from './types.js';
import type { ContainerReport } from '../../shared/report.js';
import { effectiveStatus } from '../classify.js';
import { imageMatches } from '../../shared/image-ref.js';

/** The host id of a container: stable per (host, runtime, container id), never an agent's. */
export function containerHostId(parentId: string, runtime: string, containerId: string): string {
  return `ctr-${createHash('sha256').update(`${parentId}\u0000${runtime}\u0000${containerId}`).digest('hex').slice(0, 32)}`;
}

export interface ContainerRows {
  /** Creates (or updates) the container's hosts row and its containers row; returns its host id. */
  upsert(parentId: string, parentHostname: string, c: ContainerReport, seq: number, now: string): string;
  /** Containers of `parentId` a full report with containers no longer listed: removed from the host. */
  markMissingGone(parentId: string, seq: number, now: string): void;
}

export function createContainerRows(db: Db): ContainerRows {
  // A container's hosts row has no token (an empty hash never matches one) and cannot connect.
  const insertHost = db.prepare(
    `INSERT INTO hosts (id, token_hash, hostname, enrolled_at, parent_id, status) VALUES (@id, x'', @hostname, @now, @parentId, 'cattle')
     ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname`,
  );
  const upsertRow = db.prepare(
    `INSERT INTO containers (host_id, parent_id, runtime, container_id, name, image_ref, image_id, state, first_seen, last_seen, last_seq, gone_at)
     VALUES (@id, @parentId, @runtime, @containerId, @name, @imageRef, @imageId, @state, @now, @now, @seq, CASE WHEN @state = 'gone' THEN @now END)
     ON CONFLICT (host_id) DO UPDATE SET name = coalesce(excluded.name, name), image_ref = coalesce(excluded.image_ref, image_ref),
       image_id = coalesce(excluded.image_id, image_id), state = excluded.state, last_seen = excluded.last_seen, last_seq = excluded.last_seq,
       gone_at = CASE WHEN excluded.state = 'gone' THEN coalesce(gone_at, excluded.last_seen) ELSE NULL END`,
  );
  const missing = db.prepare(`UPDATE containers SET state = 'gone', gone_at = coalesce(gone_at, ?) WHERE parent_id = ? AND last_seq < ? AND gone_at IS NULL`);
  return {
    upsert(parentId, parentHostname, c, seq, now) {
      const id = containerHostId(parentId, c.runtime, c.id);
      insertHost.run({ id, hostname: `${parentHostname}/${c.name ?? c.id.slice(0, 12)}`, now, parentId });
      upsertRow.run({ id, parentId, runtime: c.runtime, containerId: c.id, name: c.name ?? null, imageRef: c.image.ref ?? null, imageId: c.image.id ?? null, state: c.state, now, seq });
      return id;
    },
    markMissingGone(parentId, seq, now) {
      missing.run(now, parentId, seq);
    },
  };
}

export interface ContainerRow {
  host_id: string;
  parent_id: string;
  parent_hostname: string;
  runtime: string;
  container_id: string;
  name: string | null;
  image_ref: string | null;
  image_id: string | null;
  state: string;
  first_seen: string;
  last_seen: string;
  gone_at: string | null;
  status: 'cattle' | 'pet' | 'stale';
  last_report_at: string | null;
  open_findings: number;
  drift_score: number;
  pet_since: string | null;
}

/** A container row (joined with its hosts rows) as the API shows it. */
export const containerSummary = (r: ContainerRow, now: Date, staleAfterMs: number): ContainerSummary => ({
  id: r.host_id,
  host: { id: r.parent_id, hostname: r.parent_hostname },
  runtime: r.runtime,
  containerId: r.container_id,
  name: r.name,
  image: { ref: r.image_ref, id: r.image_id },
  state: r.state,
  status: effectiveStatus(r.status, r.last_report_at, now, staleAfterMs),
  openFindings: r.open_findings,
  driftScore: r.drift_score,
  petSince: r.pet_since,
  firstSeen: r.first_seen,
  lastSeen: r.last_seen,
  goneAt: r.gone_at,
});

export function createContainerQueries(db: Db, staleAfterMs: number): Synchronous<ContainerQueries> {
  const select = `SELECT c.*, p.hostname AS parent_hostname, h.status, h.last_report_at, h.open_findings, h.drift_score, h.pet_since
    FROM containers c JOIN hosts h ON h.id = c.host_id JOIN hosts p ON p.id = c.parent_id`;
  const ofHost = db.prepare<[string], ContainerRow>(`${select} WHERE c.parent_id = ? ORDER BY c.name, c.container_id`);
  const hostExists = db.prepare<[string], { id: string }>('SELECT id FROM hosts WHERE id = ?');
  const fleet = db.prepare<{ gone: number }, ContainerRow>(`${select} WHERE (@gone = 1 OR c.gone_at IS NULL) ORDER BY p.hostname, c.name, c.container_id`);
  return {
    hostContainers(hostId, now) {
      if (hostExists.get(hostId) === undefined) return null;
      return ofHost.all(hostId).map((r) => containerSummary(r, now, staleAfterMs));
    },
    listContainers(query, now) {
      // References are compared normalized (Docker keeps `debian:qs`, containerd `docker.io/library/debian:qs`).
      const rows = fleet.all({ gone: query.gone === 'true' ? 1 : 0 }).filter((r) => query.image === undefined || imageMatches(query.image, r.image_ref, r.image_id));
      let out = rows.map((r) => containerSummary(r, now, staleAfterMs));
      if (query.status !== undefined) out = out.filter((c) => c.status === query.status);
      if (query.drifted !== undefined) out = out.filter((c) => (c.status === 'pet') === (query.drifted === 'true'));
      return out;
    },
  };
}
