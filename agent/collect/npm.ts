import { lstat } from 'node:fs/promises';
import type { PackageRecord } from '../../shared/manifest.js';
import type { ScanWarning } from '../../shared/report.js';
import type { Root } from '../root.js';
import { clusterByTime, deniedFolder, listInside, mtimeOf, packageId, readChecked, walkInside } from './read.js';
import type { Collected, Collector, OwnedFile } from './types.js';

export interface NpmManifest {
  name: string;
  version: string;
  /** Command name → script path inside the package. */
  bin: Record<string, string>;
}

/** Validates an untrusted package.json: name and version must be strings; `bin` a string or an object of strings. */
export function parsePackageJson(text: string, source: string): NpmManifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source}: not JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null) throw new Error(`${source}: (document): expected an object`);
  const v = value as Record<string, unknown>;
  if (typeof v.name !== 'string' || v.name === '') throw new Error(`${source}: name: expected a non-empty string`);
  if (typeof v.version !== 'string' || v.version === '') throw new Error(`${source}: version: expected a non-empty string`);
  const bin: Record<string, string> = {};
  if (typeof v.bin === 'string') bin[v.name.replace(/^@[^/]+\//, '')] = v.bin;
  else if (typeof v.bin === 'object' && v.bin !== null) for (const [k, p] of Object.entries(v.bin)) if (typeof p === 'string' && !k.includes('/')) bin[k] = p;
  return { name: v.name, version: v.version, bin };
}

// Global prefixes: Debian/RHEL node (/usr) and npm's default for a source install (/usr/local).
const PREFIXES = ['/usr', '/usr/local'];

export const npmCollector: Collector = {
  ecosystem: 'npm',
  async collect(root: Root): Promise<Collected | null> {
    const warnings: ScanWarning[] = [];
    const packages: PackageRecord[] = [];
    const owned = new Map<string, OwnedFile>();
    const records = new Map<string, string>();
    const installs: Array<{ ecosystem: 'npm'; name: string; version: string; time: Date; tool: string; group: string }> = [];
    let any = false;
    for (const prefix of PREFIXES) {
      const nm = `${prefix}/lib/node_modules`;
      const dirs: string[] = [];
      const denied = (dir: string) => (): number => warnings.push(deniedFolder('NPM_MODULES_UNREADABLE', dir, 'the npm packages installed there are'));
      for (const e of await listInside(root, nm, denied(nm))) {
        if (e.name.startsWith('.')) continue;
        if (e.name.startsWith('@') && e.isDirectory()) for (const s of await listInside(root, `${nm}/${e.name}`, denied(`${nm}/${e.name}`))) dirs.push(`${nm}/${e.name}/${s.name}`);
        else dirs.push(`${nm}/${e.name}`);
      }
      if (dirs.length === 0) continue;
      any = true;
      let newest: { owner: { ecosystem: 'npm'; name: string }; time: number } | null = null;
      for (const dir of dirs) {
        // `npm link` leaves a link to a folder anywhere; never follow it out of the root.
        const st = await lstat(root.hostPath(dir)).catch(() => null);
        if (!st?.isDirectory()) continue;
        const pj = `${dir}/package.json`;
        const { text, error } = await readChecked(root.hostPath(pj));
        if (error !== undefined || text === null) {
          // A package folder npm left without a readable package.json: its files would look unowned.
          warnings.push({ code: error !== undefined ? 'NPM_PACKAGE_UNREADABLE' : 'NPM_PACKAGE_MISSING', path: pj, message: error !== undefined ? `cannot read package.json (${error}): that package is not checked` : 'a folder in node_modules without package.json: its files are not attributed' });
          continue;
        }
        let manifest: NpmManifest;
        try {
          manifest = parsePackageJson(text, pj);
        } catch (err) {
          warnings.push({ code: 'NPM_PACKAGE_INVALID', path: pj, message: (err as Error).message });
          continue;
        }
        const owner = { ecosystem: 'npm' as const, name: manifest.name };
        packages.push({ ecosystem: 'npm', name: manifest.name, version: manifest.version });
        records.set(packageId(owner), root.canonical(pj));
        const claim = (p: string): void => {
          const c = root.canonical(p);
          if (!owned.has(c)) owned.set(c, { owner, conffile: false });
        };
        claim(dir);
        for (const p of await walkInside(root, dir)) claim(p);
        if (dir.split('/').at(-2)?.startsWith('@')) claim(dir.slice(0, dir.lastIndexOf('/')));
        // npm links each command into <prefix>/bin.
        for (const cmd of Object.keys(manifest.bin)) {
          const link = `${prefix}/bin/${cmd}`;
          if ((await lstat(root.hostPath(link)).catch(() => null))?.isSymbolicLink()) claim(link);
        }
        // Extracted files keep the tarball's times; the folder's own mtime is when npm wrote it.
        const time = await mtimeOf(root, dir);
        if (time) {
          installs.push({ ecosystem: 'npm', name: manifest.name, version: manifest.version, time, tool: 'npm', group: prefix });
          if (!newest || time.getTime() >= newest.time) newest = { owner, time: time.getTime() };
        }
      }
      // npm's lockfile of the global folder is rewritten by every install: the latest explains it.
      if (newest) owned.set(root.canonical(`${nm}/.package-lock.json`), { owner: newest.owner, conffile: false });
    }
    if (!any) return warnings.length > 0 ? { packages, owned, warnings } : null;
    return { packages, owned, warnings, records, changeSets: clusterByTime(installs, 30_000) };
  },
};
