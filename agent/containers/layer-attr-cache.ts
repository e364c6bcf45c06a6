import { lstatSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { OwnedFile } from '../collect/types.js';
import type { CollectedAll } from '../fingerprint/observe.js';
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

const MAX_IMAGES = 64;

/**
 * What the agent learnt of image layers, kept in its state folder between scans: each layer's
 * overlay attributes and each image's packages. An image layer never changes once unpacked
 * (runtimes unpack into a new folder and rename it into place), so they are read once — one walk
 * of the image — and each later scan of the host costs what the containers changed. A layer
 * folder whose identity (device, inode, change time) differs from the one recorded is read again;
 * writable layers are never kept.
 */
export class LayerAttrCache {
  private readonly layers = new Map<string, { key: string; attrs: Array<[string, OverlayAttrs]> }>();
  private readonly images = new Map<string, { key: string; image: StoredImage }>();
  private dirty = false;

  constructor(private readonly file: string | null) {
    if (file === null) return;
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as { layers?: unknown; images?: unknown };
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

  getImage(dirs: readonly string[]): CachedImage | undefined {
    const hit = this.images.get(dirs.join('\u0000'));
    if (hit === undefined || hit.key !== dirs.map(identity).join('|')) return undefined;
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

  /** Writes the cache beside itself and renames it into place; a state folder that cannot be written is left as it is. */
  save(): void {
    if (this.file === null || !this.dirty) return;
    try {
      const tmp = `${this.file}.tmp-${process.pid}`;
      const body = { layers: [...this.layers].map(([dir, e]) => [dir, e.key, e.attrs]), images: [...this.images].map(([name, e]) => [name, e.key, e.image]) };
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

function identity(dir: string): string {
  try {
    const st = lstatSync(dir);
    return `${st.dev}:${st.ino}:${st.ctimeMs}`;
  } catch {
    return '';
  }
}
