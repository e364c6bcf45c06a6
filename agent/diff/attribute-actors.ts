import { lstat } from 'node:fs/promises';
import type { Finding } from '../../shared/report.js';
import { readHostRecords } from '../collect/host-records.js';
import type { Root } from '../root.js';
import { likelyActor } from './actor.js';

const MAX_ATTRIBUTED = 200;

/**
 * Gives hand edits (top-level file findings that no change set explains, not removals or info)
 * their likely actor. I/O: the host's records are read once, the changed files' ctime by lstat.
 */
export async function attributeActors(root: Root, findings: readonly Finding[], now: Date): Promise<void> {
  const candidates = findings.filter((f) => f.path !== undefined && f.rawPath === undefined && f.changeSet === undefined && f.kind.startsWith('file-') && f.kind !== 'file-removed' && f.severity !== 'info');
  if (candidates.length === 0) return;
  const records = await readHostRecords(root, now);
  if (records.sudo.length === 0 && records.sessions.length === 0) return;
  for (const f of candidates.slice(0, MAX_ATTRIBUTED)) {
    const st = await lstat(root.hostPath(f.path!)).catch(() => undefined);
    const actor = st && likelyActor(f.path!, st.ctimeMs, records);
    if (actor) f.actor = actor;
  }
}
