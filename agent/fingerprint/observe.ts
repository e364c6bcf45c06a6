import type { ScanWarning } from '../../shared/report.js';
import type { Policy } from '../../shared/policy.js';
import type { PackageRecord } from '../../shared/manifest.js';
import { packageId } from '../collect/read.js';
import type { ChangeSet, Collected, Collector, OwnedFile } from '../collect/types.js';
import { TreeWalker, fingerprint } from './walk.js';
import type { FingerprintOptions, ObservedFile, WalkStats, Walked } from './walk.js';
import { PREFETCH_PATHS, prefetch } from './prefetch.js';
import type { Prefetched } from './prefetch.js';
import type { Root } from '../root.js';

/** What the host really holds, read relative to its root. */
export interface Observation {
  packages: PackageRecord[];
  files: ObservedFile[];
  /** Canonical path → the package that owns it, from the package databases of the host. */
  owned: Map<string, OwnedFile>;
  /** The package managers' own records of what was done (apt commands, rpm transactions, ...). */
  changeSets?: ChangeSet[];
  /** Accounts with uid 0 besides root in the host's /etc/passwd. */
  uidZero?: string[];
}

export interface ObserveResult extends Observation {
  warnings: ScanWarning[];
  bytesHashed: number;
  stats: WalkStats;
}

export interface CollectedAll {
  packages: PackageRecord[];
  owned: Map<string, OwnedFile>;
  changeSets: ChangeSet[];
  warnings: ScanWarning[];
  /** A collector's result may not be remembered (`Collected.uncacheable`, or one failed). */
  uncacheable?: boolean;
}

/**
 * Merges what each collector found, in registry order. One verdict per path: the first owner
 * wins. A language package whose own record (dist-info, gemspec) an earlier collector already
 * owns was installed by that OS package: it is reported once, as the OS package. Pure.
 */
export function mergeCollected(results: ReadonlyArray<Collected | null>): CollectedAll {
  const packages: PackageRecord[] = [];
  const owned = new Map<string, OwnedFile>();
  const changeSets: ChangeSet[] = [];
  const warnings: ScanWarning[] = [];
  const ids = new Set<string>();
  let uncacheable = false;
  for (const got of results) {
    if (!got) continue;
    if (got.uncacheable) uncacheable = true;
    const shadowed = new Set<string>();
    for (const [id, record] of got.records ?? []) {
      const holder = owned.get(record);
      if (holder && packageId(holder.owner) !== id) shadowed.add(id);
    }
    packages.push(...got.packages.filter((p) => !shadowed.has(packageId(p))));
    warnings.push(...got.warnings);
    for (const [path, file] of got.owned) if (!owned.has(path) && !shadowed.has(packageId(file.owner))) owned.set(path, file);
    for (const cs of got.changeSets ?? []) {
      const events = cs.events.filter((e) => !shadowed.has(packageId(e)));
      // Two apt commands in one second share a Start-Date: ids stay unique all the same.
      let id = cs.id;
      for (let n = 2; ids.has(id); n++) id = `${cs.id}#${n}`;
      ids.add(id);
      if (events.length > 0) changeSets.push({ ...cs, id, events });
    }
  }
  return { packages, owned, changeSets, warnings, ...(uncacheable ? { uncacheable } : {}) };
}

/** Reads every package database of `root`. The realtime watcher calls it alone when one changed. */
export async function collectPackages(root: Root, given?: readonly Collector[]): Promise<CollectedAll> {
  // The registry's parsers (~20 ms of imports) load only when they run: a scan whose package
  // databases the package cache still holds never loads them.
  const collectors = given ?? (await import('../collect/index.js')).COLLECTORS;
  const failures: ScanWarning[] = [];
  // Started together (the few that wait on something, rpm's database copy, overlap), merged in
  // registry order by mergeCollected.
  const results = await Promise.all(
    collectors.map(async (collector): Promise<Collected | null> => {
      try {
        return await collector.collect(root);
      } catch (err) {
        // One unreadable database must not hide what the others and the fingerprint show.
        failures.push({ code: 'COLLECTOR_FAILED', message: `${collector.ecosystem} packages not read: ${(err as Error).message}` });
        return null;
      }
    }),
  );
  const all = mergeCollected(results);
  all.warnings.push(...failures);
  if (failures.length > 0) all.uncacheable = true;
  return all;
}

/**
 * Starts the walk of `policy`'s tracked paths and reads the package databases meanwhile: the walk
 * yields after every folder until they are read, so neither waits for the other to finish.
 * Resolves once the packages are read, with the walk under way (read it, or close it); a failed
 * read ends the walk and its hashing threads. It yields `TreeWalker.entries()`: records, and the
 * paths known clean (see clean-paths.ts) as their paths alone.
 */
export async function walkWhileCollecting(
  root: Root,
  policy: Policy,
  opts: FingerprintOptions,
  collectors?: readonly Collector[],
): Promise<{ walker: TreeWalker; walked: Prefetched<Walked>; packages: CollectedAll }> {
  const walker = new TreeWalker(root, policy, opts);
  // The registry's collectors, through the package cache when there is one: a warm scan whose
  // package databases did not change reads none of them.
  const collecting = opts.packages !== undefined && collectors === undefined ? opts.packages.collect(root, (tracked) => collectPackages(tracked), rememberable) : collectPackages(root, collectors);
  walker.shareWith(collecting);
  const walked = prefetch(walker.entries(), collecting, PREFETCH_PATHS);
  try {
    return { walker, walked, packages: await collecting };
  } catch (err) {
    await walked.close();
    throw err;
  }
}

/**
 * Whether the package cache may remember what the collectors read: not when a collector said
 * no, nor when a read failed for a reason of the moment, not of the file (its stat would not
 * move when the reason goes away).
 */
function rememberable(all: CollectedAll): boolean {
  return all.uncacheable !== true && !all.warnings.some((w) => TRANSIENT.test(w.message));
}
const TRANSIENT = /\b(EMFILE|ENFILE|EIO|ENOMEM|EAGAIN|EBUSY|EINTR|ETIMEDOUT|ESTALE)\b/;

/** Reads every package database, then fingerprints the tracked paths, all into memory. */
export async function observe(root: Root, policy: Policy, opts: FingerprintOptions & { collectors?: readonly Collector[] } = {}): Promise<ObserveResult> {
  const { packages, owned, changeSets, warnings } = await collectPackages(root, opts.collectors);
  const fp = await fingerprint(root, policy, opts);
  warnings.push(...fp.warnings);
  return { packages, owned, changeSets, files: fp.files, warnings, bytesHashed: fp.bytesHashed, stats: fp.stats };
}
