// A host's baseline versions as manifests: created awaiting the agent's observation (triage's
// re-baseline), derived when it arrives, fetched by the agent, listed by the API.
import type { Database as Db } from 'better-sqlite3';
import { BASELINE_SCHEMA } from '../../shared/baseline.js';
import type { BaselineState, BaselineSummary, HostBaseline } from '../../shared/baseline.js';
import { QuicksandError } from '../../shared/errors.js';
import type { Manifest } from '../../shared/manifest.js';
import type { Finding } from '../../shared/report.js';
import { deriveBaseline } from '../baseline.js';
import type { Synchronous } from './async-adapter.js';
import type { Baselines, Triage } from './types.js';

export interface BaselineRow {
  version: number;
  state: BaselineState;
  image_name: string | null;
  image_version: string | null;
  accepted: string;
  created_at: string;
  created_by: string;
  manifest: string | null;
  parent_baseline: number | null;
  parent_source: 'image' | 'baseline' | 'agent' | null;
  packages: number | null;
  files: number | null;
  notes: string | null;
  ready_at: string | null;
}

/** A baseline version row as the API shows it. Pure. */
export const baselineSummary = (r: BaselineRow): BaselineSummary => ({
  version: r.version,
  state: r.state,
  image: { name: r.image_name, version: r.image_version },
  parent: r.parent_source === null ? null : { baseline: r.parent_baseline, source: r.parent_source },
  accepted: JSON.parse(r.accepted) as unknown,
  packages: r.packages,
  files: r.files,
  notes: r.notes === null ? [] : (JSON.parse(r.notes) as string[]),
  createdAt: r.created_at,
  createdBy: r.created_by,
  readyAt: r.ready_at,
});

/**
 * The manifest the accepted findings were computed against. The server's own copy (the version
 * the agent scans against, else the image's uploaded manifest) when it is the one the agent
 * used; else the agent's, which is the only one those findings describe. `prev`: the version
 * `baseline` names; `imageManifest`: the uploaded manifest of the row's image. Pure.
 */
export function chooseBase(row: BaselineRow, prev: BaselineRow | undefined, imageManifest: string | null | undefined, baseline: number | null, expected: Manifest): { manifest: Manifest; source: 'image' | 'baseline' | 'agent'; baseline: number | null; note?: string } {
  const same = (m: Manifest): boolean =>
    m.image.name === expected.image.name && m.image.version === expected.image.version && m.image.createdAt === expected.image.createdAt &&
    m.packages.length === expected.packages.length && m.files.length === expected.files.length;
  if (baseline !== null) {
    if (prev?.state === 'ready' && prev.manifest !== null) {
      const m = JSON.parse(prev.manifest) as Manifest;
      if (same(m)) return { manifest: m, source: 'baseline', baseline };
    }
  }
  const image = imageManifest;
  if (image != null) {
    const m = JSON.parse(image) as Manifest;
    if (same(m)) return { manifest: m, source: 'image', baseline: null };
    return { manifest: expected, source: 'agent', baseline, note: `the agent scans against a manifest other than the uploaded one of image ${row.image_name} ${row.image_version}; derived from the agent's` };
  }
  // Said in the version's notes: the base is the host's own word, which an auditor should know.
  return { manifest: expected, source: 'agent', baseline, note: `no manifest of image ${row.image_name ?? '?'} ${row.image_version ?? '?'} was uploaded to the server; derived from the agent's own` };
}

/** A ready version as the agent fetches it. Pure. */
export function hostBaselineOf(hostId: string, r: BaselineRow, stored: string): HostBaseline {
  const manifest = JSON.parse(stored) as Manifest;
  return {
    schema: BASELINE_SCHEMA,
    host: hostId,
    version: r.version,
    image: { name: r.image_name ?? manifest.image.name, version: r.image_version ?? manifest.image.version },
    parent: { baseline: r.parent_baseline, source: r.parent_source ?? 'agent' },
    createdAt: r.ready_at ?? r.created_at,
    manifest,
  };
}

export function createBaselines(db: Db, triage: Pick<Synchronous<Triage>, 'audit'>): Synchronous<Baselines> {
  const hostExists = db.prepare<[string], { id: string }>('SELECT id FROM hosts WHERE id = ?');
  const one = db.prepare<[string, number], BaselineRow>('SELECT * FROM host_baselines WHERE host_id = ? AND version = ?');
  const all = db.prepare<[string], BaselineRow>('SELECT * FROM host_baselines WHERE host_id = ? ORDER BY version');
  const latest = db.prepare<[string], BaselineRow>('SELECT * FROM host_baselines WHERE host_id = ? ORDER BY version DESC LIMIT 1');
  // Only a version of the image the host runs: one rebuilt from a new image starts again from
  // that image's manifest, and its agent refuses a version of the old one (baselineApplies).
  const latestReady = db.prepare<{ hostId: string; name: string | null; version: string | null }, BaselineRow>(
    `SELECT * FROM host_baselines WHERE host_id = @hostId AND state = 'ready' AND image_name IS @name AND image_version IS @version ORDER BY version DESC LIMIT 1`,
  );
  const hostImage = db.prepare<[string], { name: string | null; version: string | null }>('SELECT image_name AS name, image_version AS version FROM hosts WHERE id = ?');
  const latestReadyOf = (hostId: string, image: { name: string | null; version: string | null } | null | undefined): BaselineRow | undefined =>
    latestReady.get({ hostId, name: image?.name ?? null, version: image?.version ?? null });
  const imageManifest = db.prepare<[string, string], { manifest: string | null }>('SELECT manifest FROM images WHERE name = ? AND version = ?');
  const noteFetched = db.prepare('UPDATE hosts SET baseline_version = ? WHERE id = ?');
  const ready = db.prepare(
    `UPDATE host_baselines SET state = 'ready', manifest = @manifest, parent_baseline = @parentBaseline, parent_source = @parentSource,
       packages = @packages, files = @files, notes = @notes, ready_at = @now WHERE host_id = @hostId AND version = @version`,
  );

  const receive = db.transaction((req: Parameters<Baselines['receiveObservation']>[0]): BaselineSummary => {
    const row = one.get(req.hostId, req.version);
    if (row === undefined) throw new QuicksandError('NOT_FOUND', `host ${req.hostId} has no baseline version ${req.version}`);
    if (row.state !== 'awaiting-observation') throw new QuicksandError('CONFLICT', `baseline version ${req.version} of host ${req.hostId} is ${row.state}, not awaiting an observation`);
    const prev = req.baseline === null ? undefined : one.get(req.hostId, req.baseline);
    const image = row.image_name === null || row.image_version === null ? undefined : imageManifest.get(row.image_name, row.image_version)?.manifest;
    const base = chooseBase(row, prev, image, req.baseline, req.expected);
    const derived = deriveBaseline(base.manifest, JSON.parse(row.accepted) as Finding[], req.observation, req.now);
    const notes = [...(base.note === undefined ? [] : [base.note]), ...derived.notes];
    ready.run({
      hostId: req.hostId,
      version: req.version,
      manifest: JSON.stringify(derived.manifest),
      parentBaseline: base.baseline,
      parentSource: base.source,
      packages: derived.manifest.packages.length,
      files: derived.manifest.files.length,
      notes: JSON.stringify(notes),
      now: req.now.toISOString(),
    });
    triage.audit({
      actor: { id: req.hostId, role: 'agent' },
      action: 'baseline-derived',
      target: `host:${req.hostId}/baseline:${req.version}`,
      detail: { parent: { source: base.source, baseline: base.baseline }, packages: derived.manifest.packages.length, files: derived.manifest.files.length, notes },
      now: req.now,
    });
    return baselineSummary(one.get(req.hostId, req.version)!);
  });

  return {
    // IMMEDIATE: reads, then writes, beside the ingest thread (see triage.ts).
    receiveObservation: (req) => receive.immediate(req),
    list(hostId) {
      if (hostExists.get(hostId) === undefined) return null;
      return all.all(hostId).map(baselineSummary);
    },
    get(hostId, version) {
      const r = one.get(hostId, version);
      return r === undefined ? null : { ...baselineSummary(r), manifest: r.manifest === null ? null : (JSON.parse(r.manifest) as Manifest) };
    },
    fetch(hostId) {
      const r = latestReadyOf(hostId, hostImage.get(hostId));
      if (r === undefined || r.manifest === null) return null;
      noteFetched.run(r.version, hostId);
      return hostBaselineOf(hostId, r, r.manifest);
    },
    commandsFor(hostId, agentBaseline, image) {
      const r = latest.get(hostId);
      if (r?.state === 'awaiting-observation') return [{ command: 'upload-observation', baseline: r.version }];
      const v = latestReadyOf(hostId, image ?? hostImage.get(hostId))?.version;
      return v !== undefined && v !== agentBaseline ? [{ command: 'fetch-baseline', baseline: v }] : [];
    },
  };
}
