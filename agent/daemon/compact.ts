import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * A full, compacting garbage collection, for a long-running process to call when it has gone
 * quiet. V8 keeps the pages a burst of work grew its heap by (the start-up crawl, a package
 * install's event batch) unless a full collection runs while nothing else is allocating; the
 * daemon's heartbeats and schedule timers keep allocating a little, so on the debootstrap minbase
 * one daemon in two stayed at ~97 MB instead of ~77 MB for as long as it ran.
 */
export function heapCompactor(): () => void {
  // V8 hands out `gc` to contexts made after the flag is set: a fresh one gives it to us.
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
