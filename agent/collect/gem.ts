import type { PackageRecord } from '../../shared/manifest.js';
import type { ScanWarning } from '../../shared/report.js';
import type { Root } from '../root.js';
import { clusterByTime, deniedFolder, listInside, mtimeOf, packageId, readChecked, readOptional, walkInside } from './read.js';
import type { Collected, Collector, OwnedFile } from './types.js';

export interface GemSpec {
  name: string;
  version: string;
  /** `ruby` for a pure-Ruby gem; otherwise part of the gem's folder name. */
  platform: string;
  executables: string[];
}

/**
 * Reads a gemspec without running it: the `# stub: <name> <version> <platform> <require paths>`
 * line RubyGems writes at the top, else the `s.name = "..."` / `s.version = "..."` lines.
 * `s.executables = ["a".freeze, "b".freeze]` names the wrappers RubyGems put in its bin folder.
 */
export function parseGemspec(text: string): GemSpec | null {
  const head = text.slice(0, 64 * 1024);
  const stub = /^# stub: (\S+) (\S+) (\S+)/m.exec(head);
  const field = (k: string): string | undefined => new RegExp(`^\\s*\\w+\\.${k}\\s*=\\s*["']([^"']+)["']`, 'm').exec(head)?.[1];
  const name = stub?.[1] ?? field('name');
  // `s.version = "1.2.3"` is the common form; Gem::Version.new("1.2.3") also appears.
  const version = stub?.[2] ?? field('version') ?? /^\s*\w+\.version\s*=\s*Gem::Version\.new\(["']([^"']+)["']\)/m.exec(head)?.[1];
  if (!name || !version || !/^[\w.+-]+$/.test(name) || !/^[\w.+-]+$/.test(version)) return null;
  const exeLine = /^\s*\w+\.executables\s*=\s*\[([^\]]*)\]/m.exec(head)?.[1] ?? '';
  const executables = [...exeLine.matchAll(/["']([^"'/]+)["']/g)].map((m) => m[1]!).filter((e) => e !== '.' && e !== '..');
  return { name, version, platform: stub?.[3] ?? 'ruby', executables };
}

/** Gem homes (GEM_HOME / GEM_PATH entries) of Debian, RHEL, SUSE and a source-built Ruby. */
async function findGemHomes(root: Root, warnings: ScanWarning[]): Promise<string[]> {
  const homes: string[] = ['/usr/share/gems'];
  for (const parent of ['/var/lib/gems', '/usr/lib/ruby/gems', '/usr/lib64/ruby/gems', '/usr/local/lib/ruby/gems', '/usr/local/share/gems']) {
    for (const e of await listInside(root, parent)) if (e.isDirectory()) homes.push(`${parent}/${e.name}`);
  }
  const out: string[] = [];
  for (const h of homes) {
    const specs = `${h}/specifications`;
    if ((await listInside(root, specs, () => warnings.push(deniedFolder('GEM_HOME_UNREADABLE', specs, 'the gems of this home are')))).length > 0) out.push(h);
  }
  return out;
}

/** Where RubyGems puts executable wrappers for a gem home: Debian's gem puts them in /usr/local/bin. */
function binDirs(home: string): string[] {
  return [`${home}/bin`, '/usr/local/bin', '/usr/bin'];
}

export const gemCollector: Collector = {
  ecosystem: 'gem',
  async collect(root: Root): Promise<Collected | null> {
    const warnings: ScanWarning[] = [];
    const homes = await findGemHomes(root, warnings);
    if (homes.length === 0) return warnings.length > 0 ? { packages: [], owned: new Map(), warnings } : null;
    const packages: PackageRecord[] = [];
    const owned = new Map<string, OwnedFile>();
    const records = new Map<string, string>();
    const installs: Array<{ ecosystem: 'gem'; name: string; version: string; time: Date; tool: string; group: string }> = [];
    for (const home of homes) {
      for (const specDir of [`${home}/specifications`, `${home}/specifications/default`]) {
        for (const e of await listInside(root, specDir)) {
          if (!e.isFile() || !e.name.endsWith('.gemspec')) continue;
          const specPath = `${specDir}/${e.name}`;
          const read = await readChecked(root.hostPath(specPath));
          if (read.error !== undefined) {
            warnings.push({ code: 'GEMSPEC_UNREADABLE', path: specPath, message: `cannot read the gemspec (${read.error}): that gem is not checked` });
            continue;
          }
          if (read.text === null) continue; // gone since the folder was listed
          const spec = parseGemspec(read.text);
          if (!spec) {
            warnings.push({ code: 'GEMSPEC_INVALID', path: specPath, message: 'no "# stub:" line and no s.name / s.version fields: skipped' });
            continue;
          }
          const owner = { ecosystem: 'gem' as const, name: spec.name };
          const id = packageId(owner);
          // Two homes may hold one gem; the first keeps the name (one package per name, as for pip).
          if (!records.has(id)) {
            packages.push({ ecosystem: 'gem', name: spec.name, version: spec.version, ...(spec.platform !== 'ruby' ? { arch: spec.platform } : {}) });
            records.set(id, root.canonical(specPath));
          }
          const full = spec.platform === 'ruby' ? `${spec.name}-${spec.version}` : `${spec.name}-${spec.version}-${spec.platform}`;
          const claim = (p: string): void => {
            const c = root.canonical(p);
            if (!owned.has(c)) owned.set(c, { owner, conffile: false });
          };
          claim(specPath);
          for (const dir of [`${home}/gems/${full}`, `${home}/doc/${full}`]) {
            if ((await mtimeOf(root, dir)) === null) continue;
            claim(dir);
            for (const p of await walkInside(root, dir)) claim(p);
          }
          claim(`${home}/cache/${full}.gem`);
          for (const exe of spec.executables) {
            for (const bin of binDirs(home)) {
              // Claim a wrapper only if it is this gem's: RubyGems writes the gem name into it.
              const wrapper = await readOptional(root.hostPath(`${bin}/${exe}`)).catch(() => null);
              if (wrapper !== null && wrapper.slice(0, 4096).includes(`'${spec.name}'`)) claim(`${bin}/${exe}`);
            }
          }
          if (!specDir.endsWith('/default')) {
            const time = await mtimeOf(root, specPath);
            if (time) installs.push({ ecosystem: 'gem', name: spec.name, version: spec.version, time, tool: 'gem', group: home });
          }
        }
      }
    }
    return { packages, owned, warnings, records, changeSets: clusterByTime(installs, 30_000) };
  },
};
