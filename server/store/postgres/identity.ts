// One agent identity, one machine (see ../identity.ts): the judgement is the pure judgeMachine.
import type { HelloFrame } from '../../../shared/protocol.js';
import { judgeMachine } from '../identity.js';
import type { CloneVerdict, MachineSeen } from '../identity.js';
import type { Sql } from './db.js';

/** Judges one hello and remembers what it said; returns the clone, if it is one. */
export async function observeMachine(q: Sql, hostId: string, hello: HelloFrame): Promise<CloneVerdict['clone']> {
  const row = await q.row<{ machine_id: string | null; boot_id: string | null; prev_boot_id: string | null }>('SELECT machine_id, boot_id, prev_boot_id FROM hosts WHERE id = $1', [hostId]);
  if (row === undefined) return null;
  const known: MachineSeen = { machineId: row.machine_id, bootId: row.boot_id, prevBootId: row.prev_boot_id };
  const { next, clone } = judgeMachine(known, hello.host);
  if (next.machineId !== known.machineId || next.bootId !== known.bootId || next.prevBootId !== known.prevBootId) {
    await q.run('UPDATE hosts SET machine_id = $1, boot_id = $2, prev_boot_id = $3 WHERE id = $4', [next.machineId, next.bootId, next.prevBootId, hostId]);
  }
  return clone;
}
