import { execFile } from 'node:child_process';

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
 * Node has no getxattr, so the attributes come from one `getfattr` run over whole trees (attr
 * package): `-R -P -h` walks without following links (nor reading through them), `-m` keeps the overlay names only, `-e hex`
 * keeps values unambiguous. A path without such attributes is not printed, so the output grows
 * with what the overlay marked, not with the tree.
 */
export async function readOverlayAttrs(dirs: readonly string[], opts: { maxBytes?: number } = {}): Promise<{ index: OverlayAttrIndex; errors: string[] }> {
  if (dirs.length === 0) return { index: new Map(), errors: [] };
  const args = ['-R', '-P', '-h', '--absolute-names', '-d', '-e', 'hex', '-m', '^(trusted|user)\\.overlay\\.', '--', ...dirs];
  const { stdout, stderr, missing } = await new Promise<{ stdout: string; stderr: string; missing: boolean }>((resolve) => {
    execFile('getfattr', args, { maxBuffer: opts.maxBytes ?? 256 * 1024 * 1024, encoding: 'utf8' }, (err, out, errOut) => {
      // Exit 1 when one path could not be read (a layer removed meanwhile): the rest is still good.
      resolve({ stdout: out ?? '', stderr: errOut ?? '', missing: (err as NodeJS.ErrnoException | null)?.code === 'ENOENT' });
    });
  });
  if (missing) return { index: new Map(), errors: ['getfattr not found: install the attr package so opaque folders and metacopy files are recognised'] };
  return { index: parseGetfattrDump(stdout), errors: stderr.split('\n').filter((l) => l.trim() !== '') };
}

/**
 * Parses `getfattr -d -e hex --absolute-names` output: blocks of `# file: PATH` then `name=0x…`
 * lines, separated by blank lines. getfattr escapes unusual bytes of PATH as `\ooo` octal and a
 * backslash as `\\`. Pure.
 */
export function parseGetfattrDump(text: string): OverlayAttrIndex {
  const index: OverlayAttrIndex = new Map();
  let current: OverlayAttrs | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = {};
      index.set(unescapeGetfattr(line.slice(8)), current);
      continue;
    }
    if (current === null) continue;
    const eq = line.indexOf('=');
    const name = eq === -1 ? line : line.slice(0, eq);
    const m = /^(?:trusted|user)\.overlay\.(opaque|metacopy|redirect|whiteout)$/.exec(name);
    if (!m) continue;
    const value = eq === -1 ? '' : hexValue(line.slice(eq + 1));
    switch (m[1]) {
      case 'opaque':
        if (value === 'y' || value === 'x') current.opaque = value;
        break;
      case 'metacopy':
        current.metacopy = true;
        break;
      case 'redirect':
        if (value !== '') current.redirect = value;
        break;
      case 'whiteout':
        current.whiteout = true;
        break;
    }
  }
  for (const [p, attrs] of index) if (Object.keys(attrs).length === 0) index.delete(p);
  return index;
}

function hexValue(raw: string): string {
  if (raw.startsWith('0x')) return Buffer.from(raw.slice(2), 'hex').toString('utf8');
  if (raw.startsWith('"') && raw.endsWith('"')) return raw.slice(1, -1);
  return raw;
}

function unescapeGetfattr(s: string): string {
  if (!s.includes('\\')) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && s[i + 1] === '\\') {
      bytes.push(0x5c);
      i++;
    } else if (s[i] === '\\' && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else bytes.push(...Buffer.from(s[i]!, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}
