import type { PackageRecord } from '../../shared/manifest.js';
import type { ScanWarning } from '../../shared/report.js';
import type { Root } from '../root.js';
import { base64ToHex, readOptional } from './read.js';
import type { Collected, Collector, DigestAlgo, OwnedFile } from './types.js';

export interface ApkFile {
  path: string;
  digest?: { algo: DigestAlgo; hex: string };
  mode?: string;
}

export interface ApkPackage {
  name: string;
  version: string;
  arch?: string;
  buildTime?: number;
  origin?: string;
  files: ApkFile[];
  /** 1-based line of the record's first field, for messages. */
  line: number;
}

/**
 * apk's checksum field: `Q1` + base64 SHA-1, `Q2` + base64 SHA-256; an `X` instead of `Q` means
 * the same digest in hex. Returns null for anything else, so a damaged line never becomes a digest.
 */
export function parseApkDigest(value: string): { algo: DigestAlgo; hex: string } | null {
  const m = /^([QX])([12])(.+)$/.exec(value.trim());
  if (!m) return null;
  const algo: DigestAlgo = m[2] === '1' ? 'sha1' : 'sha256';
  const hex = m[1] === 'Q' ? base64ToHex(m[3]!) : /^[0-9a-fA-F]+$/.test(m[3]!) ? m[3]!.toLowerCase() : null;
  if (hex === null || hex.length !== (algo === 'sha1' ? 40 : 64)) return null;
  return { algo, hex };
}

/**
 * Parses `lib/apk/db/installed`: records separated by blank lines, one `X:value` field a line.
 * `F:` opens a folder (relative to the root), each `R:` a file inside it; the `a:`/`M:` and
 * `Z:` lines that follow belong to the last file (or folder). Unknown fields are skipped, as
 * apk itself does; a file line before any folder line is reported, not guessed.
 */
export function parseApkInstalled(text: string, source = 'lib/apk/db/installed'): { packages: ApkPackage[]; errors: string[] } {
  const packages: ApkPackage[] = [];
  const errors: string[] = [];
  let pkg: Partial<ApkPackage> & { files: ApkFile[] } = { files: [] };
  let dir: string | null = null;
  let file: ApkFile | null = null;
  let lineNo = 0;
  const finish = (): void => {
    if (pkg.name && pkg.version) packages.push(pkg as ApkPackage);
    else if (pkg.line !== undefined) errors.push(`${source}:${pkg.line}: record without P: or V: skipped`);
    pkg = { files: [] };
    dir = null;
    file = null;
  };
  for (const raw of text.split('\n')) {
    lineNo++;
    const line = raw.replace(/\r$/, '');
    if (line === '') {
      finish();
      continue;
    }
    if (line[1] !== ':') {
      errors.push(`${source}:${lineNo}: not a "X:value" field`);
      continue;
    }
    pkg.line ??= lineNo;
    const key = line[0];
    const value = line.slice(2);
    switch (key) {
      case 'P':
        pkg.name = value;
        break;
      case 'V':
        pkg.version = value;
        break;
      case 'A':
        pkg.arch = value;
        break;
      case 't':
        if (/^\d+$/.test(value)) pkg.buildTime = Number(value);
        break;
      case 'o':
        pkg.origin = value;
        break;
      case 'F':
        dir = value.replace(/^\/+|\/+$/g, '');
        file = null;
        break;
      case 'R':
        if (dir === null) {
          errors.push(`${source}:${lineNo}: R: before any F: line`);
          break;
        }
        if (value.includes('/') || value === '' || value === '.' || value === '..') {
          errors.push(`${source}:${lineNo}: file name ${JSON.stringify(value)} is not a plain name`);
          file = null;
          break;
        }
        file = { path: `/${dir ? `${dir}/` : ''}${value}` };
        pkg.files.push(file);
        break;
      case 'a': {
        const mode = value.split(':')[2];
        if (file && mode && /^[0-7]+$/.test(mode)) file.mode = mode;
        break;
      }
      case 'Z': {
        const digest = parseApkDigest(value);
        if (!digest) errors.push(`${source}:${lineNo}: unrecognised digest ${JSON.stringify(value.slice(0, 20))}`);
        else if (file) file.digest = digest;
        break;
      }
      default:
        break; // C:, S:, I:, T:, U:, L:, D:, p:, M: ... not needed for drift
    }
  }
  finish();
  return { packages, errors };
}

export const apkCollector: Collector = {
  ecosystem: 'apk',
  async collect(root: Root): Promise<Collected | null> {
    const text = await readOptional(root.hostPath('/lib/apk/db/installed'));
    if (text === null) return null;
    const { packages: parsed, errors } = parseApkInstalled(text);
    const warnings: ScanWarning[] = errors.map((message) => ({ code: 'APKDB_INVALID', path: '/lib/apk/db/installed', message }));
    const packages: PackageRecord[] = [];
    const owned = new Map<string, OwnedFile>();
    for (const p of parsed) {
      packages.push({ ecosystem: 'apk', name: p.name, version: p.version, ...(p.arch ? { arch: p.arch } : {}) });
      const owner = { ecosystem: 'apk' as const, name: p.name };
      for (const f of p.files) {
        const path = root.canonical(f.path);
        // apk protects /etc (its config files are the admin's to edit), like dpkg's conffiles.
        const mode = f.mode !== undefined ? parseInt(f.mode, 8).toString(8).padStart(4, '0') : undefined;
        if (!owned.has(path)) owned.set(path, { owner, conffile: path.startsWith('/etc/'), ...(f.digest ? { digest: f.digest } : {}), ...(mode ? { mode } : {}) });
      }
    }
    // apk records no install time or history: its drift has no change set to name.
    return { packages, owned, warnings };
  },
};
