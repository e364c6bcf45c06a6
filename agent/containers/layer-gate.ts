import { createHash, randomBytes } from 'node:crypto';
import type { Dirent, Stats } from 'node:fs';
import { lstatSync, readdirSync } from 'node:fs';

/**
 * What a later scan checks of an image layer folder instead of every path in it: the identity
 * (inode, mtime, ctime) of each of its folders. A folder's mtime and ctime move whenever an entry
 * is created, removed, renamed or linked in it (and its ctime on a chmod, chown or xattr change of
 * the folder), and no one can set a ctime back short of resetting the clock or writing the disk
 * below the filesystem. So when every folder of a layer has the identity it had when the layer was
 * last read in full, the layer holds the same names as then, of the same types.
 *
 * What this does NOT see: a file rewritten in place (same inode: `cp` over it, `>>`, `truncate`),
 * or a file's own chmod, chown or xattr change, which move only that file's mtime/ctime. Those are
 * found by the next full read of the layer (image-seal.ts), which `ContainerScanContext` runs on a
 * schedule (`fullCheckMs`, a day by default) and whenever a folder check fails. The trade is
 * documented in docs/container-layouts.md.
 */
export interface LayerFolders {
  /** The layer folder's own identity (device, inode, birth time): a new folder at the same path is another layer. */
  self: string;
  /** The layer's folders, relative to it ('' is the layer folder itself). */
  dirs: string[];
  /** sha256 over every folder's path and identity; `racy:…` when one changed too recently to trust. */
  sum: string;
}

/** A change within this much of the snapshot could leave a coarse timestamp where it was (one kernel tick). */
export const RACY_MS = 2000;
/** A layer with more folders than this is read in full every scan (its record would be too big to keep). */
export const MAX_LAYER_FOLDERS = 200_000;

export function layerSelf(dir: string): string {
  try {
    const st = lstatSync(dir);
    return st.isDirectory() ? `${st.dev}:${st.ino}:${st.birthtimeMs}` : '';
  } catch {
    return '';
  }
}

/**
 * Lists the layer's folders and their identities, before the layer is read in full: a change made
 * after this moves some folder's identity away from the one recorded, so the next scan sees it.
 * null when the layer cannot be listed whole (then every scan reads it in full).
 */
export function snapshotFolders(dir: string, now = Date.now()): LayerFolders | null {
  const self = layerSelf(dir);
  if (self === '') return null;
  const dirs: string[] = [];
  const hash = createHash('sha256');
  let racy = false;
  const stack = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    let st: Stats;
    let entries: Dirent[];
    try {
      st = lstatSync(dir + rel);
      entries = readdirSync(dir + rel, { withFileTypes: true });
    } catch {
      return null;
    }
    if (!st.isDirectory()) return null;
    dirs.push(rel);
    if (dirs.length > MAX_LAYER_FOLDERS) return null;
    hash.update(`${rel}\u0000${folderIdentity(st)}\u0000`);
    if (st.ctimeMs >= now - RACY_MS || st.mtimeMs >= now - RACY_MS) racy = true;
    for (const e of entries) if (e.isDirectory()) stack.push(`${rel}/${e.name}`);
  }
  return { self, dirs, sum: racy ? `racy:${randomBytes(8).toString('hex')}` : hash.digest('hex') };
}

/** The sum of the recorded folders as they are now: equal to `rec.sum` when no folder moved. '' when one is gone. */
export function currentSum(dir: string, rec: LayerFolders): string {
  if (layerSelf(dir) !== rec.self) return '';
  const hash = createHash('sha256');
  for (const rel of rec.dirs) {
    let st: Stats;
    try {
      st = lstatSync(dir + rel);
    } catch {
      return '';
    }
    if (!st.isDirectory()) return '';
    hash.update(`${rel}\u0000${folderIdentity(st)}\u0000`);
  }
  return hash.digest('hex');
}

const folderIdentity = (st: Stats): string => `${st.dev}:${st.ino}:${st.mode}:${st.uid}:${st.gid}:${st.mtimeMs}:${st.ctimeMs}`;
