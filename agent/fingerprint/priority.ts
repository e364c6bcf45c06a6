import { createRequire } from 'node:module';
import { setPriority } from 'node:os';
import type { spawnSync as SpawnSync } from 'node:child_process';

/**
 * Lowers the scan's CPU and I/O priority so it never starves the host's own work. Call before
 * the hashing threads start: Linux threads inherit both from the thread that creates them.
 * Returns what could not be applied (not being allowed to is not a reason to stop a scan).
 */
export function lowerPriority(nice: number): string[] {
  const problems: string[] = [];
  try {
    setPriority(nice);
  } catch (err) {
    problems.push(`cannot set nice ${nice}: ${(err as Error).message}`);
  }
  // The I/O class follows the CPU level: 19 (the lowest) reads only when the disk is otherwise idle.
  const args = nice >= 19 ? ['-c', '3'] : ['-c', '2', '-n', String(Math.min(7, Math.max(0, Math.round((nice * 7) / 19))))];
  // Loaded here, not at the top: a scan without --nice then starts without child_process.
  const { spawnSync } = createRequire(import.meta.url)('node:child_process') as { spawnSync: typeof SpawnSync };
  const r = spawnSync('ionice', [...args, '-p', String(process.pid)], { stdio: 'ignore' });
  if (r.error || r.status !== 0) problems.push('cannot set the I/O priority (ionice from util-linux)');
  return problems;
}
