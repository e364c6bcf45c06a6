// A host's baseline versions as manifests, on PostgreSQL (see ../baselines.ts).
import type { BaselineSummary } from '../../../shared/baseline.js';
import { QuicksandError } from '../../../shared/errors.js';
import type { Manifest } from '../../../shared/manifest.js';
import type { Finding } from '../../../shared/report.js';
import { deriveBaseline } from '../../baseline.js';
import { baselineSummary, chooseBase, hostBaselineOf } from '../baselines.js';
import type { BaselineRow } from '../baselines.js';
import type { Baselines } from '../types.js';
import type { PgDatabase, Sql } from './db.js';
import type { PgTriage } from './triage.js';

const one = (q: Sql, hostId: string, version: number): Promise<BaselineRow | undefined> => q.row<BaselineRow>('SELECT * FROM host_baselines WHERE host_id = $1 AND version = $2', [hostId, version]);
const hostImage = (q: Sql, hostId: string): Promise<{ name: string | null; version: string | null } | undefined> =>
  q.row('SELECT image_name AS name, image_version AS version FROM hosts WHERE id = $1', [hostId]);
/** Only a version of the image the host runs (see ../baselines.ts). */
const latestReadyOf = (q: Sql, hostId: string, image: { name: string | null; version: string | null } | null | undefined): Promise<BaselineRow | undefined> =>
  q.row<BaselineRow>(
    `SELECT * FROM host_baselines WHERE host_id = $1 AND state = 'ready' AND image_name IS NOT DISTINCT FROM $2::text AND image_version IS NOT DISTINCT FROM $3::text
     ORDER BY version DESC LIMIT 1`,
    [hostId, image?.name ?? null, image?.version ?? null],
  );

export function createPgBaselines(db: PgDatabase, triage: Pick<PgTriage, 'auditIn'>): Baselines {
  return {
    receiveObservation: (req) =>
      db.tx(async (q): Promise<BaselineSummary> => {
        const row = await q.row<BaselineRow>('SELECT * FROM host_baselines WHERE host_id = $1 AND version = $2 FOR UPDATE', [req.hostId, req.version]);
        if (row === undefined) throw new QuicksandError('NOT_FOUND', `host ${req.hostId} has no baseline version ${req.version}`);
        if (row.state !== 'awaiting-observation') throw new QuicksandError('CONFLICT', `baseline version ${req.version} of host ${req.hostId} is ${row.state}, not awaiting an observation`);
        const prev = req.baseline === null ? undefined : await one(q, req.hostId, req.baseline);
        const image =
          row.image_name === null || row.image_version === null
            ? undefined
            : (await q.row<{ manifest: string | null }>('SELECT manifest FROM images WHERE name = $1 AND version = $2', [row.image_name, row.image_version]))?.manifest;
        const base = chooseBase(row, prev, image, req.baseline, req.expected);
        const derived = deriveBaseline(base.manifest, JSON.parse(row.accepted) as Finding[], req.observation, req.now);
        const notes = [...(base.note === undefined ? [] : [base.note]), ...derived.notes];
        await q.run(
          `UPDATE host_baselines SET state = 'ready', manifest = $3, parent_baseline = $4, parent_source = $5, packages = $6, files = $7, notes = $8, ready_at = $9
           WHERE host_id = $1 AND version = $2`,
          [req.hostId, req.version, JSON.stringify(derived.manifest), base.baseline, base.source, derived.manifest.packages.length, derived.manifest.files.length, JSON.stringify(notes), req.now.toISOString()],
        );
        await triage.auditIn(q, {
          actor: { id: req.hostId, role: 'agent' },
          action: 'baseline-derived',
          target: `host:${req.hostId}/baseline:${req.version}`,
          detail: { parent: { source: base.source, baseline: base.baseline }, packages: derived.manifest.packages.length, files: derived.manifest.files.length, notes },
          now: req.now,
        });
        return baselineSummary((await one(q, req.hostId, req.version))!);
      }),
    async list(hostId) {
      if ((await db.row('SELECT id FROM hosts WHERE id = $1', [hostId])) === undefined) return null;
      return (await db.rows<BaselineRow>('SELECT * FROM host_baselines WHERE host_id = $1 ORDER BY version', [hostId])).map(baselineSummary);
    },
    async get(hostId, version) {
      const r = await one(db, hostId, version);
      return r === undefined ? null : { ...baselineSummary(r), manifest: r.manifest === null ? null : (JSON.parse(r.manifest) as Manifest) };
    },
    async fetch(hostId) {
      const r = await latestReadyOf(db, hostId, await hostImage(db, hostId));
      if (r === undefined || r.manifest === null) return null;
      await db.run('UPDATE hosts SET baseline_version = $1 WHERE id = $2', [r.version, hostId]);
      return hostBaselineOf(hostId, r, r.manifest);
    },
    async commandsFor(hostId, agentBaseline, image) {
      const r = await db.row<BaselineRow>('SELECT * FROM host_baselines WHERE host_id = $1 ORDER BY version DESC LIMIT 1', [hostId]);
      if (r?.state === 'awaiting-observation') return [{ command: 'upload-observation', baseline: r.version }];
      const v = (await latestReadyOf(db, hostId, image ?? (await hostImage(db, hostId))))?.version;
      return v !== undefined && v !== agentBaseline ? [{ command: 'fetch-baseline', baseline: v }] : [];
    },
  };
}
