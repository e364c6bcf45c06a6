// The agent's state folder (stat cache, outbox, baselines): created when missing, and a clear
// word when it cannot be — above all when --state names a file.
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { QuicksandError } from '../../shared/errors.js';

/** Creates `dir` (0700) if needed; throws STATE_DIR_UNUSABLE saying what is in the way. */
export function makeStateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    const file = fileInTheWay(dir);
    if (file === dir) throw new QuicksandError('STATE_DIR_UNUSABLE', `the state folder ${dir} is a file, not a folder: pass --state DIR with a folder`);
    if (file !== null) throw new QuicksandError('STATE_DIR_UNUSABLE', `cannot create the state folder ${dir}: ${file} is a file, not a folder; pass --state DIR`);
    const denied = (err as NodeJS.ErrnoException).code === 'EACCES' || (err as NodeJS.ErrnoException).code === 'EPERM';
    throw new QuicksandError('STATE_DIR_UNUSABLE', `cannot create the state folder ${dir}: ${(err as Error).message}${denied ? '; run as root or pass --state DIR' : ''}`);
  }
}

/** `dir` or the nearest of its parents that exists, when that is not a folder. */
function fileInTheWay(dir: string): string | null {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      return statSync(d).isDirectory() ? null : d;
    } catch {
      if (path.dirname(d) === d) return null;
    }
  }
}
