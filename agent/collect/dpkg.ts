import { readFile } from 'node:fs/promises';
import type { PackageRecord } from '../../shared/manifest.js';
import type { ScanWarning } from '../../shared/report.js';
import type { Root } from '../root.js';
import { readDpkgChangeSets } from './dpkg-log.js';
import type { Collected, Collector, OwnedFile } from './types.js';

export interface DpkgStanza {
  fields: Map<string, string>;
  /** 1-based line of the stanza's first field, for messages. */
  line: number;
}

/**
 * Parses `var/lib/dpkg/status` (RFC-822-like stanzas). A continuation line starts with a space
 * or tab and is appended to the previous field with a newline, as dpkg itself keeps it.
 */
export function parseDpkgStatus(text: string): DpkgStanza[] {
  const stanzas: DpkgStanza[] = [];
  let fields = new Map<string, string>();
  let line = 0;
  let start = 0;
  let last: string | null = null;
  for (const raw of text.split('\n')) {
    line++;
    if (raw.trim() === '') {
      if (fields.size > 0) stanzas.push({ fields, line: start });
      fields = new Map();
      last = null;
      continue;
    }
    if (raw.startsWith(' ') || raw.startsWith('\t')) {
      if (last !== null) fields.set(last, `${fields.get(last) ?? ''}\n${raw.slice(1)}`);
      continue;
    }
    const colon = raw.indexOf(':');
    if (colon <= 0) continue; // not a field; dpkg would refuse the file, we keep reading
    if (fields.size === 0) start = line;
    last = raw.slice(0, colon);
    fields.set(last, raw.slice(colon + 1).trim());
  }
  if (fields.size > 0) stanzas.push({ fields, line: start });
  return stanzas;
}

// The third word of `Status:`; these states have the package's files on disk.
const PRESENT_STATES = new Set(['installed', 'half-configured', 'unpacked', 'triggers-awaited', 'triggers-pending']);

export interface DpkgPackage {
  name: string;
  version: string;
  arch: string;
  multiArchSame: boolean;
  /** Conffile path → md5 hex as dpkg recorded it at install time. */
  conffiles: Map<string, string>;
}

export function installedPackages(stanzas: DpkgStanza[]): DpkgPackage[] {
  const out: DpkgPackage[] = [];
  for (const s of stanzas) {
    const status = s.fields.get('Status')?.split(/\s+/);
    const name = s.fields.get('Package');
    const version = s.fields.get('Version');
    if (!status || status.length !== 3 || !PRESENT_STATES.has(status[2]!) || !name || !version) continue;
    out.push({
      name,
      version,
      arch: s.fields.get('Architecture') ?? 'all',
      multiArchSame: s.fields.get('Multi-Arch') === 'same',
      conffiles: parseConffiles(s.fields.get('Conffiles') ?? ''),
    });
  }
  return out;
}

/** `Conffiles:` continuation lines: ` /etc/adduser.conf <md5> [obsolete|remove-on-upgrade]`. */
export function parseConffiles(value: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of value.split('\n')) {
    const [path, md5] = line.trim().split(/\s+/);
    if (path?.startsWith('/') && md5 && /^[0-9a-f]{32}$/.test(md5)) out.set(path, md5);
  }
  return out;
}

/** `info/<pkg>.md5sums`: `<32 hex>  <path without leading />`. */
export function parseMd5sums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{32}) [ *]?(.+)$/.exec(line);
    if (m) out.set(`/${m[2]!.replace(/^\/+/, '')}`, m[1]!);
  }
  return out;
}

/** `info/<pkg>.list`: absolute paths, one a line; `/.` is the root itself. */
export function parseList(text: string): string[] {
  return text.split('\n').filter((p) => p.startsWith('/') && p !== '/.');
}

async function readOptional(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export const dpkgCollector: Collector = {
  ecosystem: 'dpkg',
  async collect(root: Root): Promise<Collected | null> {
    const statusFile = root.hostPath('/var/lib/dpkg/status');
    const status = await readOptional(statusFile);
    if (status === null) return null;
    const warnings: ScanWarning[] = [];
    const packages: PackageRecord[] = [];
    const owned = new Map<string, OwnedFile>();
    // Each info file through hostPath: in a container's layers they need not share one folder.
    const info = (file: string): string => root.hostPath(`/var/lib/dpkg/info/${file}`);
    const installed = installedPackages(parseDpkgStatus(status));
    // The info files are read all at once (their waits overlap), then merged in status order so
    // the first package listing a shared folder still keeps it.
    const files = await Promise.all(
      installed.map(async (pkg) => {
        // Multi-Arch: same packages keep `<pkg>:<arch>.list`; the rest plain `<pkg>.list`.
        const base = pkg.multiArchSame ? `${pkg.name}:${pkg.arch}` : pkg.name;
        const [list, sums] = await Promise.all([
          readOptional(info(`${base}.list`)).then((l) => l ?? readOptional(info(`${pkg.name}:${pkg.arch}.list`))),
          readOptional(info(`${base}.md5sums`)),
        ]);
        return { list, sums };
      }),
    );
    const changeSets = readDpkgChangeSets(root);
    installed.forEach((pkg, i) => {
      const { list, sums } = files[i]!;
      packages.push({ ecosystem: 'dpkg', name: pkg.name, version: pkg.version, arch: pkg.arch });
      const owner = { ecosystem: 'dpkg' as const, name: pkg.name };
      if (list === null) {
        warnings.push({ code: 'DPKG_LIST_MISSING', path: `/var/lib/dpkg/info/${pkg.name}.list`, message: `dpkg lists ${pkg.name} as installed but has no file list for it` });
        return;
      }
      const md5 = parseMd5sums(sums ?? '');
      for (const listed of parseList(list)) {
        const path = root.canonical(listed);
        const conf = pkg.conffiles.get(listed);
        const sum = conf ?? md5.get(listed);
        // A folder is listed by every package that puts something in it; the first one keeps it.
        if (owned.has(path)) continue;
        owned.set(path, { owner, conffile: conf !== undefined, ...(sum ? { digest: { algo: 'md5', hex: sum } } : {}) });
      }
    });
    return { packages, owned, warnings, changeSets: await changeSets };
  },
};
