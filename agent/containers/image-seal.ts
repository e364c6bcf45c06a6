import type { Stats } from 'node:fs';
import { lstatSync, readlinkSync } from 'node:fs';
import type { FileRecord, PackageRecord } from '../../shared/manifest.js';
import { compileGlobs, isUnder } from '../../shared/policy.js';
import type { Policy } from '../../shared/policy.js';
import { toRecord, topLevelTracked } from '../fingerprint/walk.js';
import type { ObservedFile } from '../fingerprint/walk.js';
import { RACY_MS } from './layer-gate.js';
import type { LayerStack, Resolved } from './layers.js';
import { hashFile } from './upper-diff.js';

/**
 * What an image holds, as the containers of this host must see it: the image's files (the
 * tracked paths of its merged layers) with their digests. Taken from the layers the first time
 * they are seen (an image is immutable once unpacked) or from a manifest uploaded for the image.
 * `stats` remembers, per path, the identity of the host file that showed it at the last scan and
 * that file's digest then, so that a later scan re-reads only files whose identity moved.
 */
export interface ImageSeal {
  /** Where the image's truth came from. */
  source: 'first-sight' | 'uploaded';
  files: Map<string, FileRecord>;
  /** An uploaded manifest's packages: what the containers' package databases are compared with. */
  packages?: PackageRecord[];
  /** path → [host file identity, its sha256 then]. */
  stats: Map<string, [string, string | undefined]>;
}

/** A path whose image layers on this host no longer show what the image holds. */
export interface LayerDrift {
  /** The image's record of the path; absent: the image has no such path. */
  expected?: FileRecord;
  /** The layers' record now; absent: the layers no longer show the path. */
  observed?: ObservedFile;
}

export interface SealCheck {
  drift: Map<string, LayerDrift>;
  /** True when some host file's identity moved since the seal's stats were taken (re-read or not). */
  moved: boolean;
  bytesHashed: number;
  seal: ImageSeal;
}

/**
 * Reads the image's layers (`stack`, the image's own layers, top first) under the policy's
 * tracked paths and compares each path with `seal`; with no seal, the layers are the image (first
 * sight) and a seal of them is returned. Costs one lstat per image path and layer; a file is
 * hashed only when its host file's identity (device, inode, size, mtime, ctime) moved: bytes
 * written in a layer, a chmod, a rename over it all move its ctime, which no one can set back
 * short of writing the disk below the filesystem or resetting the clock.
 */
export function checkImageLayers(stack: LayerStack, policy: Policy, seal: ImageSeal | undefined, now = Date.now()): SealCheck {
  const ignored = compileGlobs(policy.ignored);
  const stats = new Map<string, [string, string | undefined]>();
  const drift = new Map<string, LayerDrift>();
  const seen = new Set<string>();
  let bytesHashed = 0;
  let moved = false;
  const observe = (p: string, r: Resolved): ObservedFile => {
    let rec = toRecord(Buffer.from(p), p, r.st);
    if (rec.type === 'symlink') {
      const target = linkOf(r.host);
      if (target !== undefined) rec = { ...rec, target };
    }
    if (rec.type !== 'file') return rec;
    if (r.type !== 'other' || r.data === null) return { ...rec, unreadable: 'metacopy file whose data is in no lower layer' };
    const dataSt = r.data === r.host ? r.st : statOf(r.data);
    // A file changed within a clock tick of now could change again without moving its times: its
    // identity is not kept, so the next scan hashes it again.
    const key = dataSt === null || Math.max(dataSt.ctimeMs, dataSt.mtimeMs) >= now - RACY_MS ? '' : identity(dataSt);
    const before = seal?.stats.get(p);
    if (before !== undefined && key !== '' && before[0] === key && before[1] !== undefined) {
      stats.set(p, before);
      return { ...rec, sha256: before[1] };
    }
    if (before !== undefined) moved = true;
    try {
      const { sha256, bytes } = hashFile(r.data);
      bytesHashed += bytes;
      stats.set(p, [key, sha256]);
      return { ...rec, sha256 };
    } catch (err) {
      return { ...rec, unreadable: (err as Error).message };
    }
  };
  const files = new Map<string, FileRecord>();
  const visit = (p: string, r: Resolved): void => {
    if (!ignored(p)) {
      seen.add(p);
      const now = observe(p, r);
      if (now.type !== 'file') {
        const key = identity(r.st);
        const before = seal?.stats.get(p);
        if (before !== undefined && before[0] !== key) moved = true;
        stats.set(p, [key, undefined]);
      }
      if (seal === undefined) {
        const { unreadable: _u, ...rec } = now;
        files.set(p, rec);
      } else {
        const was = seal.files.get(p);
        if (was === undefined || !sameRecord(was, now)) drift.set(p, { ...(was ? { expected: was } : {}), observed: now });
      }
    }
    if (r.type === 'dir') for (const e of stack.list(p)) walk(p === '/' ? `/${e.name}` : `${p}/${e.name}`);
  };
  const walk = (p: string): void => {
    const r = stack.resolve(p);
    if (r !== null) visit(p, r);
  };
  const tops = topLevelTracked(policy.tracked);
  for (const top of tops) walk(top);
  if (seal === undefined) return { drift, moved: false, bytesHashed, seal: { source: 'first-sight', files, stats } };
  // What the image holds and the layers no longer show (deleted, or hidden by a marker added).
  for (const [p, was] of seal.files) if (!seen.has(p) && !ignored(p) && tops.some((t) => isUnder(p, t))) drift.set(p, { expected: was });
  return { drift, moved, bytesHashed, seal: { ...seal, stats } };
}

/** Equal as an image's content: type, mode, owner, size, digest (when the image has one), link target. */
export function sameRecord(a: FileRecord, b: ObservedFile): boolean {
  if (b.unreadable !== undefined) return false;
  return a.type === b.type && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.size === b.size && (a.sha256 === undefined || a.sha256 === b.sha256) && a.target === b.target;
}

/** A host file's identity: the inode number tells two files of one device apart, whatever their paths. */
const identity = (st: Stats): string => `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;

function statOf(host: string): Stats | null {
  try {
    return lstatSync(host);
  } catch {
    return null;
  }
}

function linkOf(host: string): string | undefined {
  try {
    return readlinkSync(host, 'utf8');
  } catch {
    return undefined;
  }
}
