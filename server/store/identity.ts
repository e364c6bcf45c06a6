// One agent identity, one machine. An agent's hello names its machine-id and boot id; a token
// that speaks from another machine-id than its host's, or that goes back to a boot it had left,
// is used by two machines (a copied agent.json, an image cloned with its identity inside).
import type { Database as Db } from 'better-sqlite3';
import type { HelloFrame } from '../../shared/protocol.js';

export const CLONE_FINDING_KIND = 'identity-cloned';

export interface MachineSeen {
  machineId: string | null;
  bootId: string | null;
  /** The boot before `bootId`: a host that reboots never comes back to it. */
  prevBootId: string | null;
}

export interface CloneVerdict {
  /** What to remember for the host after this hello. */
  next: MachineSeen;
  /** Set when this hello comes from a second machine: one finding per other machine. */
  clone: { key: string; reason: string } | null;
}

/**
 * Pure. The first machine-id the host is known by (at enrolment, or its first hello) stays its
 * own; a hello with another is a second machine. Same machine-id (two clones of one image that
 * kept it): a new boot id is a reboot, unless it is the one the host had just left — two
 * machines taking turns on one token.
 */
export function judgeMachine(known: MachineSeen, hello: { machineId?: string | undefined; bootId?: string | undefined }): CloneVerdict {
  const machineId = hello.machineId ?? null;
  const bootId = hello.bootId ?? null;
  if (machineId !== null && known.machineId !== null && machineId !== known.machineId) {
    return {
      next: known,
      clone: { key: `${CLONE_FINDING_KIND}|machine|${machineId}`, reason: `this agent's token was used from machine-id ${machineId}; it belongs to machine-id ${known.machineId}` },
    };
  }
  const next: MachineSeen = { ...known, machineId: known.machineId ?? machineId };
  if (bootId === null || bootId === known.bootId) return { next, clone: null };
  if (bootId === known.prevBootId) {
    return {
      next: known,
      clone: { key: `${CLONE_FINDING_KIND}|boot|${[bootId, known.bootId].sort().join('|')}`, reason: `this agent's token is used by two running machines (boot ids ${known.bootId} and ${bootId} take turns)` },
    };
  }
  return { next: { ...next, bootId, prevBootId: known.bootId }, clone: null };
}

export interface MachineIdentity {
  /** Judges one hello and remembers what it said; returns the clone, if it is one. */
  observe(hostId: string, hello: HelloFrame): CloneVerdict['clone'];
}

export function createMachineIdentity(db: Db): MachineIdentity {
  const get = db.prepare<[string], { machine_id: string | null; boot_id: string | null; prev_boot_id: string | null }>(
    'SELECT machine_id, boot_id, prev_boot_id FROM hosts WHERE id = ?',
  );
  const put = db.prepare('UPDATE hosts SET machine_id = ?, boot_id = ?, prev_boot_id = ? WHERE id = ?');
  return {
    observe(hostId, hello) {
      const row = get.get(hostId);
      if (row === undefined) return null;
      const known: MachineSeen = { machineId: row.machine_id, bootId: row.boot_id, prevBootId: row.prev_boot_id };
      const { next, clone } = judgeMachine(known, hello.host);
      if (next.machineId !== known.machineId || next.bootId !== known.bootId || next.prevBootId !== known.prevBootId) {
        put.run(next.machineId, next.bootId, next.prevBootId, hostId);
      }
      return clone;
    },
  };
}
