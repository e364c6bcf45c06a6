import path from 'node:path';
import type { PackageRecord } from '../../shared/manifest.js';
import type { ScanWarning } from '../../shared/report.js';
import type { Root } from '../root.js';
import { base64ToHex, capMessages, clusterByTime, deniedFolder, listInside, mtimeOf, normalizePythonName, packageId, readChecked, readOptional } from './read.js';
import type { Collected, Collector, DigestAlgo, OwnedFile } from './types.js';

/** `Name:` and `Version:` from the header part of METADATA / PKG-INFO (RFC-822 style). */
export function parseMetadata(text: string): { name?: string; version?: string } {
  const out: { name?: string; version?: string } = {};
  for (const line of text.split('\n')) {
    if (line.trim() === '') break; // the body (long description) starts after the first blank line
    const m = /^(Name|Version):\s*(.+?)\s*$/.exec(line);
    if (m?.[1] === 'Name') out.name ??= m[2]!;
    else if (m?.[1] === 'Version') out.version ??= m[2]!;
  }
  return out;
}

export interface RecordEntry {
  /** Path as written, relative to the site folder (may climb out with `../` for scripts). */
  path: string;
  digest?: { algo: DigestAlgo; hex: string };
}

/** One CSV line (RFC 4180 quoting, as Python's csv module writes RECORD). */
function splitCsv(line: string): string[] | null {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"' && cur === '') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  if (quoted) return null;
  out.push(cur);
  return out;
}

const RECORD_ALGOS: Record<string, DigestAlgo> = { sha256: 'sha256', sha384: 'sha384', sha512: 'sha512' };

/** Parses a dist-info RECORD: `path,<algo>=<urlsafe-b64-unpadded>,size`; RECORD's own and .pyc lines may have no digest. */
export function parseRecord(text: string, source: string): { entries: RecordEntry[]; errors: string[] } {
  const entries: RecordEntry[] = [];
  const errors: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line === '') return;
    const cols = splitCsv(line);
    // Exactly path,hash,size: a merge-conflict marker or a line cut short is no claim on a file.
    if (!cols || cols.length !== 3 || cols[0] === '' || !/^\d*$/.test(cols[2]!)) {
      errors.push(`${source}:${i + 1}: not a RECORD line (path,hash,size): ${JSON.stringify(line.slice(0, 40))} skipped`);
      return;
    }
    const [file, hash] = cols;
    const entry: RecordEntry = { path: file! };
    if (hash) {
      const eq = hash.indexOf('=');
      const algo = RECORD_ALGOS[hash.slice(0, eq)];
      const hex = eq > 0 ? base64ToHex(hash.slice(eq + 1)) : null;
      if (algo && hex) entry.digest = { algo, hex };
      else errors.push(`${source}:${i + 1}: unrecognised hash ${JSON.stringify(hash.slice(0, 20))}`);
    }
    entries.push(entry);
  });
  return { entries, errors };
}

/**
 * Site folders to look in. A virtualenv is a prefix with its own `lib/pythonX.Y/site-packages`,
 * so every folder directly under /opt and /srv (and one level further) is tried as a prefix.
 */
async function findSiteDirs(root: Root, warnings: ScanWarning[]): Promise<string[]> {
  const prefixes = ['/usr', '/usr/local'];
  for (const base of ['/opt', '/srv']) {
    for (const e of await listInside(root, base)) {
      if (!e.isDirectory()) continue;
      prefixes.push(`${base}/${e.name}`);
      for (const sub of await listInside(root, `${base}/${e.name}`)) if (sub.isDirectory()) prefixes.push(`${base}/${e.name}/${sub.name}`);
    }
  }
  const sites: string[] = [];
  for (const prefix of prefixes) {
    for (const lib of ['lib', 'lib64']) {
      for (const e of await listInside(root, `${prefix}/${lib}`)) {
        if (!e.isDirectory() || !/^python\d/.test(e.name)) continue;
        for (const kind of ['site-packages', 'dist-packages']) {
          const dir = `${prefix}/${lib}/${e.name}/${kind}`;
          if ((await listInside(root, dir, () => warnings.push(deniedFolder('PIP_SITE_UNREADABLE', dir, 'the Python packages installed there are')))).length > 0) sites.push(dir);
        }
      }
    }
  }
  return [...new Set(sites)];
}

interface Found {
  name: string;
  version: string;
  record: string;
  site: string;
  tool: string;
  time: Date | null;
  files: Array<{ path: string; digest?: { algo: DigestAlgo; hex: string } }>;
}

async function readDistInfo(root: Root, site: string, entry: string, warnings: ScanWarning[]): Promise<Found | null> {
  const dir = `${site}/${entry}`;
  const isDist = entry.endsWith('.dist-info');
  // A legacy egg-info is a folder with PKG-INFO, or a file holding the same text.
  const metaPath = isDist ? `${dir}/METADATA` : `${dir}/PKG-INFO`;
  let metaFile = metaPath;
  let read = await readChecked(root.hostPath(metaPath));
  if (read.text === null && read.error === undefined && !isDist) {
    const asFile = await readChecked(root.hostPath(dir));
    read = asFile.error === 'EISDIR' ? { text: null } : asFile;
    metaFile = dir;
  }
  if (read.error !== undefined) {
    warnings.push({ code: 'PIP_METADATA_UNREADABLE', path: metaFile, message: `cannot read the package's metadata (${read.error}): skipped` });
    return null;
  }
  const text = read.text;
  if (text === null) {
    if (isDist) warnings.push({ code: 'PIP_METADATA_MISSING', path: metaPath, message: 'a dist-info folder without METADATA: skipped' });
    return null;
  }
  const meta = parseMetadata(text);
  if (!meta.name || !meta.version) {
    warnings.push({ code: 'PIP_METADATA_INVALID', path: metaFile, message: 'no Name: or Version: field' });
    return null;
  }
  const files: Found['files'] = [];
  if (isDist) {
    const record = await readChecked(root.hostPath(`${dir}/RECORD`));
    if (record.error !== undefined) warnings.push({ code: 'PIP_RECORD_UNREADABLE', path: `${dir}/RECORD`, message: `cannot read the file list of ${meta.name} (${record.error}): its files are not attributed` });
    if (record.text !== null) {
      const parsed = parseRecord(record.text, `${dir}/RECORD`);
      for (const message of capMessages(parsed.errors)) warnings.push({ code: 'PIP_RECORD_INVALID', path: `${dir}/RECORD`, message });
      for (const e of parsed.entries) files.push({ path: path.posix.normalize(`${site}/${e.path}`), ...(e.digest ? { digest: e.digest } : {}) });
    }
  } else {
    // installed-files.txt: paths relative to the egg-info folder, no digests.
    const { text: list, error } = await readChecked(root.hostPath(`${dir}/installed-files.txt`));
    // ENOTDIR: an egg-info that is a file has no list beside it.
    if (error !== undefined && error !== 'ENOTDIR') warnings.push({ code: 'PIP_RECORD_UNREADABLE', path: `${dir}/installed-files.txt`, message: `cannot read the file list of ${meta.name} (${error}): its files are not attributed` });
    for (const line of (list ?? '').split('\n')) if (line.trim()) files.push({ path: path.posix.normalize(`${dir}/${line.trim()}`) });
    files.push({ path: metaFile });
  }
  const installer = (await readOptional(root.hostPath(`${dir}/INSTALLER`)).catch(() => null))?.trim();
  // RECORD is the last thing pip writes: its mtime is when the install finished.
  const time = (await mtimeOf(root, isDist ? `${dir}/RECORD` : metaFile)) ?? (await mtimeOf(root, dir));
  return { name: normalizePythonName(meta.name), version: meta.version, record: metaFile, site, tool: installer || 'python', time, files };
}

export const pipCollector: Collector = {
  ecosystem: 'pip',
  async collect(root: Root): Promise<Collected | null> {
    const warnings: ScanWarning[] = [];
    const sites = await findSiteDirs(root, warnings);
    if (sites.length === 0) return warnings.length > 0 ? { packages: [], owned: new Map(), warnings } : null;
    const found: Found[] = [];
    for (const site of sites) {
      for (const e of await listInside(root, site)) {
        if (!e.name.endsWith('.dist-info') && !e.name.endsWith('.egg-info')) continue;
        // A link here could point out of the root (a mounted image is someone else's tree).
        if (!e.isDirectory() && !(e.isFile() && e.name.endsWith('.egg-info'))) continue;
        const got = await readDistInfo(root, site, e.name, warnings);
        if (got) found.push(got);
      }
    }
    const packages: PackageRecord[] = [];
    const owned = new Map<string, OwnedFile>();
    const records = new Map<string, string>();
    const seen = new Set<string>();
    for (const f of found) {
      const owner = { ecosystem: 'pip' as const, name: f.name };
      // The same distribution in two site folders (a venv and the system) is one name here;
      // the first keeps the record, both keep their files.
      if (!seen.has(f.name)) {
        seen.add(f.name);
        packages.push({ ecosystem: 'pip', name: f.name, version: f.version });
        records.set(packageId(owner), root.canonical(f.record));
      }
      for (const file of f.files) {
        const p = root.canonical(file.path);
        if (!owned.has(p)) owned.set(p, { owner, conffile: false, ...(file.digest ? { digest: file.digest } : {}) });
        // The folders a distribution created below its site folder are its too.
        for (let dir = path.posix.dirname(p); dir.startsWith(`${f.site}/`) && !owned.has(dir); dir = path.posix.dirname(dir)) owned.set(dir, { owner, conffile: false });
      }
    }
    const changeSets = clusterByTime(
      found.filter((f) => f.time !== null).map((f) => ({ ecosystem: 'pip' as const, name: f.name, version: f.version, time: f.time!, tool: f.tool, group: f.site })),
      30_000,
    );
    return { packages, owned, warnings, changeSets, records };
  },
};
