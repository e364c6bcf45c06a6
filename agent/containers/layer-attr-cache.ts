import { lstatSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { OwnedFile } from '../collect/types.js';
import type { CollectedAll } from '../fingerprint/observe.js';
import type { FileRecord, PackageRecord } from '../../shared/manifest.js';
import type { ImageSeal } from './image-seal.js';
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

const MAX_IMAGES = 64;
/** Seals are the big part (a record per image path): fewer of them are kept. */
const MAX_SEALS = 16;
const MAX_SEAL_PATHS = 1_000_000;

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
  private readonly seals = new Map<string, StoredSeal>();
  private dirty = false;

  constructor(private readonly file: string | null) {
    if (file === null) return;
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as { layers?: unknown; images?: unknown; seals?: unknown };
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
      if (Array.isArray(parsed.seals) && parsed.seals.length <= MAX_SEALS) {
        for (const e of parsed.seals as unknown[]) if (Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && isStoredSeal(e[1])) this.seals.set(e[0], e[1]);
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
    const hit = this.seals.get(dirs.join('\u0000'));
    if (hit === undefined) return undefined;
    return { source: hit.source, files: new Map(hit.files.map((f) => [f.path, f])), ...(hit.packages ? { packages: hit.packages } : {}), stats: new Map(hit.stats.map(([p, k, h]) => [p, [k, h ?? undefined]])) };
  }

  setSeal(dirs: readonly string[], seal: ImageSeal): void {
    // The state folder is not the place for a record per path of a giant image.
    if (seal.files.size > MAX_SEAL_PATHS) return;
    const name = dirs.join('\u0000');
    this.seals.delete(name);
    this.seals.set(name, { source: seal.source, files: [...seal.files.values()], ...(seal.packages ? { packages: seal.packages } : {}), stats: [...seal.stats].map(([p, [k, h]]) => [p, k, h ?? null]) });
    while (this.seals.size > MAX_SEALS) this.seals.delete(this.seals.keys().next().value!);
    this.dirty = true;
  }

  /** Writes the cache beside itself and renames it into place; a state folder that cannot be written is left as it is. */
  save(): void {
    if (this.file === null || !this.dirty) return;
    try {
      const tmp = `${this.file}.tmp-${process.pid}`;
      const body = { layers: [...this.layers].map(([dir, e]) => [dir, e.key, e.attrs]), images: [...this.images].map(([name, e]) => [name, e.key, e.image]), seals: [...this.seals] };
      writeFileSync(tmp, JSON.stringify(body), { mode: 0o600 });
      renameSync(tmp, this.file);
      this.dirty = false;
    } catch {
      // a read-only state folder: the next scan reads the layers again
    }
  }
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
