// Containers as children of their host on PostgreSQL (see ../containers.ts).
import type { ContainerReport } from '../../../shared/report.js';
import { imageMatches } from '../../../shared/image-ref.js';
import { containerHostId, containerSummary } from '../containers.js';
import type { ContainerRow } from '../containers.js';
import type { ContainerQueries } from '../types.js';
import type { PgDatabase, Sql } from './db.js';

/** Creates (or updates) the container's hosts row and its containers row; returns its host id. */
export async function upsertContainer(q: Sql, parentId: string, parentHostname: string, c: ContainerReport, seq: number, now: string): Promise<string> {
  const id = containerHostId(parentId, c.runtime, c.id);
  // A container's hosts row has no token (an empty hash never matches one) and cannot connect.
  await q.run(
    `INSERT INTO hosts (id, token_hash, hostname, enrolled_at, parent_id, status) VALUES ($1, '\\x'::bytea, $2, $3, $4, 'cattle')
     ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname`,
    [id, `${parentHostname}/${c.name ?? c.id.slice(0, 12)}`, now, parentId],
  );
  await q.run(
    `INSERT INTO containers AS t (host_id, parent_id, runtime, container_id, name, image_ref, image_id, state, first_seen, last_seen, last_seq, gone_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, CASE WHEN $8 = 'gone' THEN $9 END)
     ON CONFLICT (host_id) DO UPDATE SET name = coalesce(excluded.name, t.name), image_ref = coalesce(excluded.image_ref, t.image_ref),
       image_id = coalesce(excluded.image_id, t.image_id), state = excluded.state, last_seen = excluded.last_seen, last_seq = excluded.last_seq,
       gone_at = CASE WHEN excluded.state = 'gone' THEN coalesce(t.gone_at, excluded.last_seen) ELSE NULL END`,
    [id, parentId, c.runtime, c.id, c.name ?? null, c.image.ref ?? null, c.image.id ?? null, c.state, now, seq],
  );
  return id;
}

/** Containers of `parentId` a full report with containers no longer listed: removed from the host. */
export async function markMissingContainersGone(q: Sql, parentId: string, seq: number, now: string): Promise<void> {
  await q.run(`UPDATE containers SET state = 'gone', gone_at = coalesce(gone_at, $1) WHERE parent_id = $2 AND last_seq < $3 AND gone_at IS NULL`, [now, parentId, seq]);
}

// NULLS FIRST: where SQLite sorts a missing name.
const SELECT = `SELECT c.*, p.hostname AS parent_hostname, h.status, h.last_report_at, h.open_findings, h.drift_score, h.pet_since
  FROM containers c JOIN hosts h ON h.id = c.host_id JOIN hosts p ON p.id = c.parent_id`;

export function createPgContainerQueries(db: PgDatabase, staleAfterMs: number): ContainerQueries {
  return {
    async hostContainers(hostId, now) {
      if ((await db.row('SELECT id FROM hosts WHERE id = $1', [hostId])) === undefined) return null;
      const rows = await db.rows<ContainerRow>(`${SELECT} WHERE c.parent_id = $1 ORDER BY c.name NULLS FIRST, c.container_id`, [hostId]);
      return rows.map((r) => containerSummary(r, now, staleAfterMs));
    },
    async listContainers(query, now) {
      const rows = await db.rows<ContainerRow>(
        `${SELECT} WHERE ($1::boolean OR c.gone_at IS NULL) ORDER BY p.hostname, c.name NULLS FIRST, c.container_id`,
        [query.gone === 'true'],
      );
      // References are compared normalized, as on SQLite (Docker keeps `debian:qs`, containerd `docker.io/library/debian:qs`).
      let out = rows.filter((r) => query.image === undefined || imageMatches(query.image, r.image_ref, r.image_id)).map((r) => containerSummary(r, now, staleAfterMs));
      if (query.status !== undefined) out = out.filter((c) => c.status === query.status);
      if (query.drifted !== undefined) out = out.filter((c) => (c.status === 'pet') === (query.drifted === 'true'));
      return out;
    },
  };
}
