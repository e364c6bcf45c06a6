import type { Dirent } from 'node:fs';
import { readdirSync } from 'node:fs';
import { xattrApi, xattrLoadError } from '../fingerprint/xattrs.js';

/**
 * The overlayfs extended attributes of one path, as the kernel (or a runtime unpacking a layer
 * tar: moby's and containers/storage's overlay whiteout converters) wrote them. Both the
 * `trusted.overlay.*` names (rootful mounts) and the `user.overlay.*` names (rootless mounts,
 * `userxattr`) are read; the kernel's Documentation/filesystems/overlayfs.rst defines them:
 * - `opaque=y`: the directory hides everything below it in the lower layers. Since Linux 6.7
 *   `opaque=x` means "this directory holds xwhiteouts" and is *not* opaque.
 * - `metacopy` (any value, even empty): metadata was copied up, the data still lives in a lower
 *   layer, at `redirect` if set, else at the same path.
 * - `redirect`: where a renamed directory (redirect_dir=on) or a metacopy file takes its lower
 *   content from: an absolute path from the layer's root, or a name in the same parent folder.
 * - `whiteout` on a regular file (an "xwhiteout", 6.7+): a whiteout like a 0:0 character device.
 */
export interface OverlayAttrs {
  opaque?: 'y' | 'x';
  metacopy?: true;
  redirect?: string;
  whiteout?: true;
}

/** Host path → attributes, for the paths that carry any. */
export type OverlayAttrIndex = Map<string, OverlayAttrs>;

/**
 * The overlay attributes of every folder and regular file in the trees `dirs` (the only kinds
 * overlayfs marks), read through the agent's one xattr reader (`@napi-rs/xattr`, as the walk's
 * security xattrs): each path's names are listed without following links and a value is read
 * only for an overlay name, so the cost is one listxattr per path and the index grows with what
 * the overlay marked, not with the tree. A path that cannot be read (a layer removed meanwhile)
 * is an error string; the rest is still good.
 */
export async function readOverlayAttrs(dirs: readonly string[], opts: { maxErrors?: number } = {}): Promise<{ index: OverlayAttrIndex; errors: string[] }> {
  const index: OverlayAttrIndex = new Map();
  const errors: string[] = [];
  if (dirs.length === 0) return { index, errors };
  const x = xattrApi();
  if (x === null) return { index, errors: [`${XATTRS_UNAVAILABLE}: ${xattrLoadError()}`] };
  const maxErrors = opts.maxErrors ?? 1000;
  const fail = (p: string, err: unknown): void => {
    if (errors.length < maxErrors) errors.push(`${p}: ${(err as Error).message}`);
  };
  const mark = (p: string): void => {
    let names: string[];
    try {
      names = x.listAttributesSync(p);
    } catch (err) {
      // os error 95/61: no xattrs on this filesystem or this file; 2: removed meanwhile.
      if (!/os error (95|61|2)\b/.test((err as Error).message)) fail(p, err);
      return;
    }
    const attrs: OverlayAttrs = {};
    for (const name of names) {
      const m = OVERLAY_NAME.exec(name);
      if (!m) continue;
      let value = '';
      try {
        value = x.getAttributeSync(p, name)?.toString('utf8') ?? '';
      } catch (err) {
        fail(p, err);
        continue;
      }
      if (m[1] === 'opaque' && (value === 'y' || value === 'x')) attrs.opaque = value;
      else if (m[1] === 'metacopy') attrs.metacopy = true;
      else if (m[1] === 'redirect' && value !== '') attrs.redirect = value;
      else if (m[1] === 'whiteout') attrs.whiteout = true;
    }
    if (Object.keys(attrs).length > 0) index.set(p, attrs);
  };
  for (const top of dirs) {
    const stack = [top];
    mark(top);
    while (stack.length > 0) {
      const dir = stack.pop()!;
      let entries: Dirent[];
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch (err) {
        fail(dir, err);
        continue;
      }
      for (const e of entries) {
        const p = `${dir}/${e.name}`;
        if (e.isDirectory()) {
          mark(p);
          stack.push(p);
        } else if (e.isFile()) mark(p);
      }
    }
  }
  return { index, errors };
}

/** The message prefix when no xattr can be read on this platform. */
export const XATTRS_UNAVAILABLE = 'extended attributes cannot be read on this platform, so opaque folders and metacopy files are not recognised';
const OVERLAY_NAME = /^(?:trusted|user)\.overlay\.(opaque|metacopy|redirect|whiteout)$/;

