import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { OwnedFile } from '../collect/types.js';
import type { CollectedAll } from '../fingerprint/observe.js';
import type { FileRecord, PackageRecord } from '../../shared/manifest.js';
import type { ImageSeal, LayerDrift } from './image-seal.js';
import type { LayerFolders } from './layer-gate.js';
import type { OverlayAttrIndex, OverlayAttrs } from './overlay-xattrs.js';

/** What an image's layers hold for the collectors: their packages and what reading them touched. */
export interface CachedImage {
  packages: CollectedAll;
  accessed: ReadonlySet<string>;
  listed: ReadonlySet<string>;
}

interface StoredImage {
  packages: Omit<CollectedAll, 'owned'> & { owned: Array<[string, OwnedFile]> };
  accessed: string[];
  listed: string[];
}

interface StoredSeal {
  source: ImageSeal['source'];
  files: FileRecord[];
  packages?: PackageRecord[];
  stats: Array<[string, string, string | null]>;
}

/**
 * The last full read of an image's layers (image-seal.ts): when, against which seal (an uploaded
 * manifest's digest), what each layer's folders summed to just before (layer-gate.ts), and the
 * drift it found, which stands while no layer folder moved and the next full read is not due.
 */
export interface ImageCheck {
  at: number;
  source: ImageSeal['source'];
  uploaded?: string;
  sums: string[];
  drift: Array<[string, LayerDrift]>;
}

const MAX_IMAGES = 64;
/** Seals are the big part (a record per image path): fewer of them are kept. */
const MAX_SEALS = 16;
const MAX_SEAL_PATHS = 1_000_000;
/** A check whose drift is bigger than this is not kept: the next scan reads the layers in full again. */
const MAX_KEPT_DRIFT = 10_000;

/**
 * What the agent learnt of image layers, kept in its state folder between scans: each layer's
 * overlay attributes, each image's packages and each image's seal (image-seal.ts: its files and
 * digests as first seen or uploaded). An image layer never changes once unpacked (runtimes unpack
 * into a new folder and rename it into place), so the packages and digests are read once and each
 * later scan costs a stat of the image's paths plus what the containers changed; a layer that did
 * change is drift against the seal, never a new truth. A layer folder whose identity (device,
 * inode, change time) differs from the one recorded has its attributes read again; writable
 * layers are never kept.
 */
export class LayerAttrCache {
  private readonly layers = new Map<string, { key: string; attrs: Array<[string, OverlayAttrs]> }>();
  private readonly images = new Map<string, { key: string; image: StoredImage }>();
  /** Seals read or made in this process; `changed`: to be written to its own file by `save`. */
  private readonly seals = new Map<string, { seal: StoredSeal; changed: boolean }>();
  private readonly folders = new Map<string, LayerFolders>();
  private readonly checks = new Map<string, ImageCheck>();
  private dirty = false;

  /**
   * Seals are kept one file each under `container-seals/` beside `file`, read only by a scan that
   * reads an image's layers in full: the file read by every scan stays small whatever the images' size.
   */
  private readonly sealDir: string | null;

  constructor(private readonly file: string | null) {
    this.sealDir = file === null ? null : path.join(path.dirname(file), 'container-seals');
    if (file === null) return;
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as { layers?: unknown; images?: unknown; seals?: unknown; folders?: unknown; checks?: unknown };
      if (Array.isArray(parsed.layers) && parsed.layers.length <= 100_000) {
        for (const e of parsed.layers as unknown[]) {
          if (!Array.isArray(e) || e.length !== 3 || typeof e[0] !== 'string' || typeof e[1] !== 'string' || !Array.isArray(e[2])) continue;
          const attrs = (e[2] as unknown[]).filter((a): a is [string, OverlayAttrs] => Array.isArray(a) && typeof a[0] === 'string' && typeof a[1] === 'object' && a[1] !== null);
          this.layers.set(e[0], { key: e[1], attrs });
        }
      }
      if (Array.isArray(parsed.images) && parsed.images.length <= MAX_IMAGES) {
        for (const e of parsed.images as unknown[]) {
          // Written by this agent alone (mode 0600 in its state folder); a damaged one is dropped whole.
          if (Array.isArray(e) && e.length === 3 && typeof e[0] === 'string' && typeof e[1] === 'string' && isStoredImage(e[2])) this.images.set(e[0], { key: e[1], image: e[2] });
        }
      }
      // Seals kept inside this file by earlier agents: moved to their own files at the next save.
      if (Array.isArray(parsed.seals) && parsed.seals.length <= MAX_SEALS) {
        for (const e of parsed.seals as unknown[]) if (Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && isStoredSeal(e[1])) this.seals.set(e[0], { seal: e[1], changed: true });
        if (this.seals.size > 0) this.dirty = true;
      }
      if (Array.isArray(parsed.folders) && parsed.folders.length <= 10_000) {
        for (const e of parsed.folders as unknown[]) if (Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && isFolders(e[1])) this.folders.set(e[0], e[1]);
      }
      if (Array.isArray(parsed.checks) && parsed.checks.length <= MAX_IMAGES) {
        for (const e of parsed.checks as unknown[]) if (Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && isCheck(e[1])) this.checks.set(e[0], e[1]);
      }
    } catch {
      // absent or damaged: read the layers again and write it anew
    }
  }

  get(dir: string): OverlayAttrIndex | undefined {
    const hit = this.layers.get(dir);
    if (hit === undefined || hit.key !== identity(dir)) return undefined;
    return new Map(hit.attrs);
  }

  set(dir: string, attrs: OverlayAttrIndex): void {
    const key = identity(dir);
    if (key === '') return;
    this.layers.set(dir, { key, attrs: [...attrs] });
    this.dirty = true;
  }

  /**
   * The image's packages as first read. Kept while the image's folders are there, whatever their
   * identity says: what the layers hold is checked against the image's seal instead, and a
   * changed layer must not become the image's truth.
   */
  getImage(dirs: readonly string[]): CachedImage | undefined {
    const hit = this.images.get(dirs.join('\u0000'));
    if (hit === undefined) return undefined;
    const { owned, ...rest } = hit.image.packages;
    return { packages: { ...rest, owned: new Map(owned) }, accessed: new Set(hit.image.accessed), listed: new Set(hit.image.listed) };
  }

  setImage(dirs: readonly string[], image: CachedImage): void {
    const ids = dirs.map(identity);
    if (ids.includes('')) return;
    const name = dirs.join('\u0000');
    this.images.delete(name);
    this.images.set(name, { key: ids.join('|'), image: { packages: { ...image.packages, owned: [...image.packages.owned] }, accessed: [...image.accessed], listed: [...image.listed] } });
    while (this.images.size > MAX_IMAGES) this.images.delete(this.images.keys().next().value!);
    this.dirty = true;
  }

  /** Forgets a layer's overlay attributes: they are read again. */
  forget(dir: string): void {
    if (this.layers.delete(dir)) this.dirty = true;
  }

  getSeal(dirs: readonly string[]): ImageSeal | undefined {
    const hit = this.storedSeal(dirs.join('\u0000'));
    if (hit === undefined) return undefined;
    return { source: hit.source, files: new Map(hit.files.map((f) => [f.path, f])), ...(hit.packages ? { packages: hit.packages } : {}), stats: new Map(hit.stats.map(([p, k, h]) => [p, [k, h ?? undefined]])) };
  }

  setSeal(dirs: readonly string[], seal: ImageSeal): void {
    // The state folder is not the place for a record per path of a giant image.
    if (seal.files.size > MAX_SEAL_PATHS) return;
    const name = dirs.join('\u0000');
    this.seals.set(name, { seal: { source: seal.source, files: [...seal.files.values()], ...(seal.packages ? { packages: seal.packages } : {}), stats: [...seal.stats].map(([p, [k, h]]) => [p, k, h ?? null]) }, changed: true });
    this.dirty = true;
  }

  private storedSeal(name: string): StoredSeal | undefined {
    const hit = this.seals.get(name);
    if (hit !== undefined || this.sealDir === null) return hit?.seal;
    try {
      const parsed = JSON.parse(readFileSync(path.join(this.sealDir, sealFile(name)), 'utf8')) as unknown;
      if (!Array.isArray(parsed) || parsed[0] !== name || !isStoredSeal(parsed[1])) return undefined;
      this.seals.set(name, { seal: parsed[1], changed: false });
      return parsed[1];
    } catch {
      return undefined;
    }
  }

  /** The folders of a layer as last listed before it was read in full (layer-gate.ts). */
  getFolders(dir: string): LayerFolders | undefined {
    return this.folders.get(dir);
  }

  setFolders(dir: string, rec: LayerFolders | null): void {
    if (rec === null) this.folders.delete(dir);
    else this.folders.set(dir, rec);
    this.dirty = true;
  }

  getCheck(dirs: readonly string[]): ImageCheck | undefined {
    return this.checks.get(dirs.join('\u0000'));
  }

  setCheck(dirs: readonly string[], check: ImageCheck | null): void {
    const name = dirs.join('\u0000');
    this.checks.delete(name);
    if (check !== null && check.drift.length <= MAX_KEPT_DRIFT) this.checks.set(name, check);
    while (this.checks.size > MAX_IMAGES) this.checks.delete(this.checks.keys().next().value!);
    this.dirty = true;
  }

  /** Writes the cache beside itself and renames it into place; a state folder that cannot be written is left as it is. */
  save(): void {
    if (this.file === null || !this.dirty) return;
    try {
      this.saveSeals();
      // Only the layers still named by a kept check keep their folder lists.
      const named = new Set([...this.checks.keys()].flatMap((k) => k.split('\u0000')));
      for (const dir of this.folders.keys()) if (!named.has(dir)) this.folders.delete(dir);
      const tmp = `${this.file}.tmp-${process.pid}`;
      const body = { layers: [...this.layers].map(([dir, e]) => [dir, e.key, e.attrs]), images: [...this.images].map(([name, e]) => [name, e.key, e.image]), folders: [...this.folders], checks: [...this.checks] };
      writeFileSync(tmp, JSON.stringify(body), { mode: 0o600 });
      renameSync(tmp, this.file);
      this.dirty = false;
    } catch {
      // a read-only state folder: the next scan reads the layers again
    }
  }

  /** Writes the seals made in this process, one file each, and keeps the newest `MAX_SEALS` files. */
  private saveSeals(): void {
    if (this.sealDir === null) return;
    const changed = [...this.seals].filter(([, e]) => e.changed);
    if (changed.length === 0) return;
    mkdirSync(this.sealDir, { recursive: true, mode: 0o700 });
    for (const [name, e] of changed) {
      const file = path.join(this.sealDir, sealFile(name));
      writeFileSync(`${file}.tmp-${process.pid}`, JSON.stringify([name, e.seal]), { mode: 0o600 });
      renameSync(`${file}.tmp-${process.pid}`, file);
      e.changed = false;
    }
    // Beyond MAX_SEALS files, the oldest of the images no kept check names any more go first.
    const inUse = new Set([...this.checks.keys()].map(sealFile));
    const others = readdirSync(this.sealDir)
      .filter((f) => f.endsWith('.json') && !inUse.has(f))
      .map((f) => ({ f, t: lstatSync(path.join(this.sealDir!, f)).mtimeMs }))
      .sort((a, b) => b.t - a.t);
    for (const { f } of others.slice(Math.max(0, MAX_SEALS - inUse.size))) rmSync(path.join(this.sealDir, f), { force: true });
  }
}

const sealFile = (name: string): string => `${createHash('sha256').update(name).digest('hex').slice(0, 32)}.json`;

function isFolders(v: unknown): v is LayerFolders {
  const o = v as LayerFolders | null;
  return typeof o === 'object' && o !== null && typeof o.self === 'string' && typeof o.sum === 'string' && Array.isArray(o.dirs) && o.dirs.every((d) => typeof d === 'string');
}

function isCheck(v: unknown): v is ImageCheck {
  const o = v as ImageCheck | null;
  return typeof o === 'object' && o !== null && typeof o.at === 'number' && (o.source === 'first-sight' || o.source === 'uploaded') && (o.uploaded === undefined || typeof o.uploaded === 'string') && Array.isArray(o.sums) && o.sums.every((x) => typeof x === 'string') && Array.isArray(o.drift) && o.drift.every((d) => Array.isArray(d) && d.length === 2 && typeof d[0] === 'string' && typeof d[1] === 'object' && d[1] !== null);
}

function isStoredImage(v: unknown): v is StoredImage {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  const p = o.packages as Record<string, unknown> | undefined;
  return Array.isArray(o.accessed) && Array.isArray(o.listed) && typeof p === 'object' && p !== null && Array.isArray(p.packages) && Array.isArray(p.owned) && Array.isArray(p.changeSets) && Array.isArray(p.warnings);
}

function isStoredSeal(v: unknown): v is StoredSeal {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (o.source === 'first-sight' || o.source === 'uploaded') && Array.isArray(o.files) && Array.isArray(o.stats) && o.files.every((f) => typeof f === 'object' && f !== null && typeof (f as FileRecord).path === 'string') && o.stats.every((e) => Array.isArray(e) && e.length === 3);
}

function identity(dir: string): string {
  try {
    const st = lstatSync(dir);
    return `${st.dev}:${st.ino}:${st.ctimeMs}`;
  } catch {
    return '';
  }
}
