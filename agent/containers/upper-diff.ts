import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { closeSync, constants, lstatSync, openSync, readSync, readdirSync, readlinkSync } from 'node:fs';
import type { FileRecord } from '../../shared/manifest.js';
import { compileGlobs, isUnder } from '../../shared/policy.js';
import type { Policy } from '../../shared/policy.js';
import type { ScanWarning } from '../../shared/report.js';
import { toRecord, topLevelTracked } from '../fingerprint/walk.js';
import type { ObservedFile } from '../fingerprint/walk.js';
import { isWhiteout } from './layers.js';
import type { Layer, LayerStack, Resolved } from './layers.js';

/**
 * What a container's writable layer changed, as two sides the differ compares: `observed` holds
 * the merged view's record of every path the upper layer holds (content from the upper, or from
 * the lower a metacopy file points at), `expected` the image's record of the same paths and of
 * everything a whiteout or an opaque folder hid. Unlike `docker diff`, a path copied up with the
 * same bytes and metadata compares equal: the differ finds nothing there.
 */
export interface UpperChanges {
  observed: ObservedFile[];
  expected: FileRecord[];
  /**
   * Paths whose presence in the view the upper layer decided: every non-folder, whiteout, new
   * folder and opaque folder (a folder only copied up because something below it changed is not).
   */
  touched: string[];
  warnings: ScanWarning[];
  stats: { entries: number; bytesHashed: number };
  /** False when the upper layer itself could not be read (gone, unreadable). */
  readable: boolean;
}

/** sha256 of lower files by host path, valid while (inode, size, mtime) stay: every container of an image shares it. */
export class DigestCache {
  private readonly cache = new Map<string, { key: string; sha256: string }>();

  get(host: string, st: Stats): string | undefined {
    const hit = this.cache.get(host);
    return hit?.key === statKey(st) ? hit.sha256 : undefined;
  }

  set(host: string, st: Stats, sha256: string): void {
    if (this.cache.size > 200_000) this.cache.clear();
    this.cache.set(host, { key: statKey(st), sha256 });
  }
}

const statKey = (st: Stats): string => `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;

export interface UpperOptions {
  policy: Policy;
  digests: DigestCache;
  /** Most records one container may add (a hostile or runaway upper layer is cut off, with a warning). */
  maxEntries?: number;
}

/**
 * Walks `upper` (never the merged mount, never writing) and compares each entry under the tracked
 * paths with the image's view `lowers` (the layers below it, top first). The walk costs what the
 * writable layer holds: the image's files are read only where the upper layer changed them.
 */
export function diffUpper(upper: Layer, lowers: LayerStack, opts: UpperOptions): UpperChanges {
  const ignored = compileGlobs(opts.policy.ignored);
  const max = opts.maxEntries ?? 500_000;
  const out: UpperChanges = { observed: [], expected: [], touched: [], warnings: [], stats: { entries: 0, bytesHashed: 0 }, readable: true };
  const expected = new Map<string, FileRecord>();
  try {
    if (!lstatSync(upper.dir).isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
  } catch (err) {
    out.readable = false;
    out.warnings.push({ code: 'CONTAINER_UPPER_UNREADABLE', path: upper.dir, message: `writable layer ${upper.dir} not read: ${describe(err)}` });
    return out;
  }

  const hash = (host: string, st: Stats, cache: boolean): string | { unreadable: string } => {
    const known = cache ? opts.digests.get(host, st) : undefined;
    if (known !== undefined) return known;
    try {
      const { sha256, bytes } = hashFile(host);
      out.stats.bytesHashed += bytes;
      if (cache) opts.digests.set(host, st, sha256);
      return sha256;
    } catch (err) {
      return { unreadable: describe(err) };
    }
  };
  const withContent = (rec: ObservedFile, host: string | null, st: Stats, cache: boolean): ObservedFile => {
    if (rec.type !== 'file') return rec;
    if (host === null) return { ...rec, unreadable: 'metacopy file whose data is in no lower layer' };
    const got = hash(host, st, cache);
    return typeof got === 'string' ? { ...rec, sha256: got } : { ...rec, unreadable: got.unreadable };
  };
  const lowerRecord = (inside: string, r: Resolved, withHash: boolean): FileRecord => {
    const rec = toRecord(Buffer.from(inside), inside, r.st);
    const linked = r.type === 'other' && r.st.isSymbolicLink() ? readLinkOf(r.host) : undefined;
    const base = linked !== undefined ? { ...rec, target: linked } : rec;
    if (!withHash || r.type !== 'other' || base.type !== 'file') return base;
    const { unreadable: _u, ...hashed } = withContent(base, r.data, r.st, true);
    return hashed;
  };
  /** Everything of the image at and below `inside`: what a whiteout or an opaque folder took away. */
  const hideLowerSubtree = (inside: string, includeSelf: boolean): void => {
    const stack = [inside];
    let first = true;
    while (stack.length > 0 && expected.size < max) {
      const p = stack.pop()!;
      const r = lowers.resolve(p);
      if (r === null) continue;
      if (!first || includeSelf) if (!expected.has(p)) expected.set(p, lowerRecord(p, r, false));
      first = false;
      if (r.type === 'dir') for (const e of lowers.list(p)) stack.push(`${p}/${e.name}`);
    }
  };

  const tops = topLevelTracked(opts.policy.tracked);
  const tracked = (p: string): boolean => tops.some((t) => isUnder(p, t));

  /**
   * One entry of the upper layer. Outside the tracked paths (or inside ignored ones) it is not
   * compared, only noted in `touched` (a package database in /var/lib changes what the
   * collectors read); inside them its record is compared with the image's.
   */
  const visit = (inside: string): void => {
    if (out.stats.entries >= max) return;
    const host = upper.dir + inside;
    let st: Stats;
    try {
      st = lstatSync(host);
    } catch (err) {
      // Gone between the folder's listing and now (a container still writing): not drift to guess at.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') out.warnings.push({ code: 'CONTAINER_PATH_UNREADABLE', path: inside, message: `${host}: ${describe(err)}` });
      return;
    }
    out.stats.entries++;
    const compare = tracked(inside) && !ignored(inside);
    const attrs = upper.attrs.get(host);
    const below = lowers.resolve(inside);
    if (isWhiteout(st, attrs)) {
      if (below !== null) {
        if (compare) hideLowerSubtree(inside, true);
        out.touched.push(inside);
      }
      return;
    }
    const opaque = attrs?.opaque === 'y';
    if (!st.isDirectory() || below === null || below.type !== 'dir' || opaque) out.touched.push(inside);
    if (compare) {
      const metacopy = attrs?.metacopy === true && st.isFile();
      let rec = toRecord(Buffer.from(inside), inside, st);
      if (rec.type === 'symlink') {
        const target = readLinkOf(host);
        if (target !== undefined) rec = { ...rec, target };
      }
      // A metacopy file's bytes are those of the lower file it stands for (its redirect, or the same path).
      const data = metacopy ? (below?.type === 'other' && attrs?.redirect === undefined ? below.data : redirectData(lowers, inside, attrs?.redirect)) : host;
      out.observed.push(withContent(rec, data, st, metacopy));
      if (below !== null && !expected.has(inside)) expected.set(inside, lowerRecord(inside, below, rec.type === 'file'));
      if (opaque && below !== null && st.isDirectory()) hideLowerSubtree(inside, false);
    }
    if (!st.isDirectory()) return;
    let names: string[];
    try {
      names = readdirSync(host).sort();
    } catch (err) {
      out.warnings.push({ code: 'CONTAINER_PATH_UNREADABLE', path: inside, message: `${host}: ${describe(err)}` });
      return;
    }
    for (const name of names) visit(`${inside}/${name}`);
  };

  let top: string[];
  try {
    top = readdirSync(upper.dir).sort();
  } catch (err) {
    out.readable = false;
    out.warnings.push({ code: 'CONTAINER_UPPER_UNREADABLE', path: upper.dir, message: `writable layer ${upper.dir} not read: ${describe(err)}` });
    return out;
  }
  for (const name of top) visit(`/${name}`);
  if (out.stats.entries >= max) out.warnings.push({ code: 'CONTAINER_UPPER_TRUNCATED', path: upper.dir, message: `writable layer ${upper.dir} holds more than ${max} entries: the rest was not compared` });
  // A path the upper layer holds is compared with the image even when the image has none there.
  out.expected = [...expected.values()];
  return out;
}

function redirectData(lowers: LayerStack, inside: string, redirect: string | undefined): string | null {
  const target = redirect === undefined ? inside : redirect.startsWith('/') ? redirect : `${inside.slice(0, inside.lastIndexOf('/'))}/${redirect}`;
  const r = lowers.resolve(target);
  return r?.type === 'other' ? r.data : null;
}

function readLinkOf(host: string): string | undefined {
  try {
    return readlinkSync(host, 'utf8');
  } catch {
    return undefined;
  }
}

const CHUNK = Buffer.allocUnsafe(1 << 20);

/**
 * sha256 of a regular file, read in 1 MiB chunks. Opened without following a link and without
 * blocking, in case the path was swapped for a link or a FIFO since it was lstat'ed.
 */
export function hashFile(host: string): { sha256: string; bytes: number } {
  const fd = openSync(host, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const h = createHash('sha256');
    let bytes = 0;
    for (;;) {
      const n = readSync(fd, CHUNK, 0, CHUNK.length, null);
      if (n === 0) break;
      h.update(CHUNK.subarray(0, n));
      bytes += n;
    }
    return { sha256: h.digest('hex'), bytes };
  } finally {
    closeSync(fd);
  }
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code} ${e.message.replace(/^[A-Z]+: /, '')}` : String(err);
}
