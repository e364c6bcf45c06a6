import type { Dirent, Stats } from 'node:fs';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { ABSENT_HOST_PATH, canonicalize, topLevelAliases } from '../root.js';
import type { Root } from '../root.js';
import type { OverlayAttrIndex, OverlayAttrs } from './overlay-xattrs.js';

/** One layer folder (an upper `diff`/`fs`, or a lower) and the overlay attributes inside it. */
export interface Layer {
  /** Absolute path of the layer's root on this machine, no trailing slash. */
  dir: string;
  attrs: OverlayAttrIndex;
}

/** What one layer holds at one path, as overlayfs reads it. */
type Probe =
  | { kind: 'absent' }
  | { kind: 'whiteout' }
  | { kind: 'dir'; st: Stats; opaque: boolean; redirect?: string }
  | { kind: 'other'; st: Stats; metacopy: boolean; redirect?: string };

/** A path of the merged view: the layer that shows it, and for a folder every layer it merges. */
export type Resolved =
  | { type: 'dir'; st: Stats; layer: number; host: string; merged: Array<{ layer: number; at: string }> }
  | { type: 'other'; st: Stats; layer: number; host: string; metacopy: boolean; data: string | null };

/**
 * A stack of overlay layers, top first, read the way the kernel's overlayfs lookup does
 * (fs/overlayfs/namei.c, Documentation/filesystems/overlayfs.rst), without mounting anything:
 * - a name is looked up layer by layer from the top; the first non-directory wins and hides
 *   everything below; directories of several layers merge;
 * - a whiteout (0:0 character device, or a file with `overlay.whiteout`) hides the name in the
 *   layers below it; an opaque directory hides everything below it in the lower layers;
 * - a directory with `overlay.redirect` takes its lower content from the redirected path;
 * - a `metacopy` file shows its own metadata with the data of the lower file it stands for.
 * Everything is synchronous and read-only (lstat, readdir, readlink): collectors call `hostPath`
 * synchronously. Probes are cached per host path, shared by every stack over the same layers
 * (200 containers of one image probe its layers once).
 */
export class LayerStack {
  private readonly resolved = new Map<string, Resolved | null>();
  /** Every path looked up or listed, when recording (see `recordAccess`). */
  accessed: Set<string> | null = null;
  listed: Set<string> | null = null;

  constructor(
    readonly layers: readonly Layer[],
    private readonly probes: ProbeCache = new ProbeCache(),
  ) {}

  /** Starts remembering every path resolved and every folder listed (to know what a reader depends on). */
  recordAccess(): void {
    this.accessed = new Set();
    this.listed = new Set();
  }

  resolve(inside: string): Resolved | null {
    const hit = this.resolved.get(inside);
    if (hit !== undefined) return hit;
    const got = this.lookup(inside);
    if (this.resolved.size > 200_000) this.resolved.clear();
    this.resolved.set(inside, got);
    return got;
  }

  private lookup(inside: string): Resolved | null {
    const parts = inside.split('/').filter((p) => p !== '' && p !== '.');
    const rootSt = this.probeDir(0, '');
    if (rootSt === null) return null;
    // Candidates: the layers holding the current folder, each with the folder's path in it.
    let cands: Array<{ layer: number; at: string }> = this.layers.map((_, layer) => ({ layer, at: '' })).filter((c) => this.probeDir(c.layer, '') !== null);
    let topDir: { layer: number; st: Stats } = { layer: 0, st: rootSt };
    for (let k = 0; k < parts.length; k++) {
      const name = parts[k]!;
      const last = k === parts.length - 1;
      const next: Array<{ layer: number; at: string }> = [];
      let redirectedTo: string | undefined;
      for (const c of cands) {
        const at = redirectedTo ?? `${c.at}/${name}`;
        const p = this.probe(c.layer, at);
        if (p.kind === 'absent') continue;
        if (p.kind === 'whiteout') break;
        if (p.kind === 'other') {
          if (next.length > 0) break; // a file below a folder of an upper layer is hidden
          if (!last) return null; // a file where the path needs a folder
          const host = this.layers[c.layer]!.dir + at;
          const data = p.metacopy ? this.metacopyData(c.layer, at, p.redirect) : host;
          return { type: 'other', st: p.st, layer: c.layer, host, metacopy: p.metacopy, data };
        }
        if (next.length === 0) topDir = { layer: c.layer, st: p.st };
        next.push({ layer: c.layer, at });
        if (p.opaque) break;
        if (p.redirect !== undefined) redirectedTo = p.redirect.startsWith('/') ? p.redirect : `${at.slice(0, at.lastIndexOf('/'))}/${p.redirect}`;
      }
      if (next.length === 0) return null;
      cands = next;
    }
    return { type: 'dir', st: topDir.st, layer: topDir.layer, host: this.layers[topDir.layer]!.dir + (cands[0]?.at ?? ''), merged: cands };
  }

  /** The lower file a metacopy file takes its bytes from; null when no lower layer has it. */
  private metacopyData(layer: number, at: string, redirect: string | undefined): string | null {
    const target = redirect === undefined ? at : redirect.startsWith('/') ? redirect : `${at.slice(0, at.lastIndexOf('/'))}/${redirect}`;
    for (let l = layer + 1; l < this.layers.length; l++) {
      const p = this.probe(l, target);
      if (p.kind === 'other' && !p.metacopy) return this.layers[l]!.dir + target;
      if (p.kind === 'other' && p.metacopy) continue; // a metacopy over a metacopy: keep going down
      if (p.kind !== 'absent') return null;
    }
    return null;
  }

  /** The merged entries of a folder of the view: [] when it is absent or not a folder. */
  list(inside: string, onDenied?: () => void): Dirent[] {
    const dir = this.resolve(inside);
    this.listed?.add(inside);
    if (dir === null || dir.type !== 'dir') return [];
    const seen = new Set<string>();
    const out: Dirent[] = [];
    for (const { layer, at } of dir.merged) {
      let entries: Dirent[];
      try {
        entries = readdirSync(this.layers[layer]!.dir + at, { withFileTypes: true });
      } catch (err) {
        // A layer folder that may not be read is reported; one that vanished is not: the others still show what they hold.
        if ((err as NodeJS.ErrnoException).code === 'EACCES') onDenied?.();
        continue;
      }
      for (const e of entries) {
        if (seen.has(e.name)) continue;
        seen.add(e.name);
        const p = this.probe(layer, `${at}/${e.name}`);
        if (p.kind === 'whiteout' || p.kind === 'absent') continue;
        out.push(e);
      }
    }
    return out;
  }

  /** The path on this machine that holds the content of `inside` in the view. */
  hostPath(inside: string): string {
    this.accessed?.add(inside);
    const r = this.resolve(inside);
    if (r === null) return ABSENT + inside;
    if (r.type === 'other') return r.data ?? ABSENT + inside;
    return r.host;
  }

  private probeDir(layer: number, at: string): Stats | null {
    const p = this.probe(layer, at);
    return p.kind === 'dir' ? p.st : null;
  }

  private probe(layer: number, at: string): Probe {
    const l = this.layers[layer]!;
    return this.probes.get(l.dir + at, l.attrs);
  }
}

/**
 * Whether one of `layers` (the layers above an image's, top first) decides what the view shows at
 * `inside`: it holds the path itself (a whiteout included), or a non-folder, a whiteout or an
 * opaque folder above it. The image's layers below then do not show there.
 */
export function layersDecide(layers: readonly Layer[], inside: string, probes: ProbeCache): boolean {
  const parts = inside.split('/').filter((p) => p !== '');
  for (const l of layers) {
    let at = '';
    for (let k = 0; k < parts.length; k++) {
      at += `/${parts[k]}`;
      const p = probes.get(l.dir + at, l.attrs);
      if (p.kind === 'absent') break;
      if (k === parts.length - 1 || p.kind !== 'dir' || p.opaque) return true;
    }
  }
  return false;
}

/** Returned for paths the view does not hold (whited out), so a reader never opens a whiteout device. */
const ABSENT = ABSENT_HOST_PATH;

/** lstat results by host path, with the path's overlay attributes folded in. */
export class ProbeCache {
  private readonly cache = new Map<string, Probe>();

  get(host: string, attrs: OverlayAttrIndex): Probe {
    let p = this.cache.get(host);
    if (p === undefined) {
      p = probeHost(host, attrs.get(host));
      if (this.cache.size > 500_000) this.cache.clear();
      this.cache.set(host, p);
    }
    return p;
  }
}

function probeHost(host: string, attrs: OverlayAttrs | undefined): Probe {
  let st: Stats;
  try {
    st = lstatSync(host);
  } catch {
    return { kind: 'absent' };
  }
  if (isWhiteout(st, attrs)) return { kind: 'whiteout' };
  if (st.isDirectory()) return { kind: 'dir', st, opaque: attrs?.opaque === 'y', ...(attrs?.redirect ? { redirect: attrs.redirect } : {}) };
  return { kind: 'other', st, metacopy: attrs?.metacopy === true && st.isFile(), ...(attrs?.redirect ? { redirect: attrs.redirect } : {}) };
}

/** A 0:0 character device, or (Linux 6.7+) a regular file marked `overlay.whiteout`. */
export function isWhiteout(st: Stats, attrs: OverlayAttrs | undefined): boolean {
  return (st.isCharacterDevice() && st.rdev === 0) || (st.isFile() && attrs?.whiteout === true);
}

/**
 * The merged view of a stack as a `Root`: the collectors read it as they read any root, each
 * path through the layers (`hostPath`), each folder listing merged (`list`).
 */
export function layeredRoot(stack: LayerStack, label: string): Root {
  const links: Array<[string, string]> = [];
  for (const e of stack.list('/')) {
    if (!e.isSymbolicLink()) continue;
    try {
      links.push([e.name, readlinkSync(stack.hostPath(`/${e.name}`))]);
    } catch {
      // an unreadable link is simply not an alias
    }
  }
  const aliases = topLevelAliases(links);
  return {
    dir: label,
    hostPath: (inside) => stack.hostPath(inside),
    canonical: (inside) => canonicalize(inside, aliases),
    list: (inside, onDenied) => stack.list(inside, onDenied),
  };
}
