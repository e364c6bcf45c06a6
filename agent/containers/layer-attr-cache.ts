import { lstatSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { OverlayAttrIndex, OverlayAttrs } from './overlay-xattrs.js';

/**
 * The overlay attributes of image layers, kept in the agent's state folder between scans. An
 * image layer never changes once unpacked (runtimes unpack into a new folder and rename it into
 * place), so its attributes are read once — one walk of the image — and each later scan of the
 * host costs what the containers changed. A layer folder whose identity (device, inode, change
 * time) differs from the one recorded is read again; uppers are never cached.
 */
export class LayerAttrCache {
  private readonly entries = new Map<string, { key: string; attrs: Array<[string, OverlayAttrs]> }>();
  private dirty = false;

  constructor(private readonly file: string | null) {
    if (file === null) return;
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
      if (!Array.isArray(parsed) || parsed.length > 100_000) return;
      for (const e of parsed as unknown[]) {
        if (!Array.isArray(e) || e.length !== 3 || typeof e[0] !== 'string' || typeof e[1] !== 'string' || !Array.isArray(e[2])) continue;
        const attrs = (e[2] as unknown[]).filter((a): a is [string, OverlayAttrs] => Array.isArray(a) && typeof a[0] === 'string' && typeof a[1] === 'object' && a[1] !== null);
        this.entries.set(e[0], { key: e[1], attrs });
      }
    } catch {
      // absent or damaged: read the layers again and write it anew
    }
  }

  get(dir: string): OverlayAttrIndex | undefined {
    const hit = this.entries.get(dir);
    if (hit === undefined || hit.key !== identity(dir)) return undefined;
    return new Map(hit.attrs);
  }

  set(dir: string, attrs: OverlayAttrIndex): void {
    const key = identity(dir);
    if (key === '') return;
    this.entries.set(dir, { key, attrs: [...attrs] });
    this.dirty = true;
  }

  /** Writes the cache beside itself and renames it into place; a state folder that cannot be written is left as it is. */
  save(): void {
    if (this.file === null || !this.dirty) return;
    try {
      const tmp = `${this.file}.tmp-${process.pid}`;
      writeFileSync(tmp, JSON.stringify([...this.entries].map(([dir, e]) => [dir, e.key, e.attrs])), { mode: 0o600 });
      renameSync(tmp, this.file);
      this.dirty = false;
    } catch {
      // a read-only state folder: the next scan reads the layers' attributes again
    }
  }
}

function identity(dir: string): string {
  try {
    const st = lstatSync(dir);
    return `${st.dev}:${st.ino}:${st.ctimeMs}`;
  } catch {
    return '';
  }
}
