import { lstatSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import path from 'node:path';
import { FolderWatch } from './folder-watch.js';
import type { DirWatcher, FolderWatchOptions } from './folder-watch.js';
import { InotifyChildWatch, findInotifyReader } from './inotify-child.js';
import type { FileRecord, Manifest, PackageRecord } from '../../shared/manifest.js';
import { isManifestIndex, memoryIndex } from '../manifest/index-db.js';
import type { ManifestIndex } from '../manifest/index-db.js';
import { compileGlobs, isUnder } from '../../shared/policy.js';
import type { Policy } from '../../shared/policy.js';
import { REPORT_SCHEMA, summarize } from '../../shared/summary.js';
import type { Report, ReportScope, ScanWarning, WatchState } from '../../shared/report.js';
import type { ChangeSet, Collector, OwnedFile } from '../collect/types.js';
import { selectForVerification } from '../diff/differ.js';
import { fingerprint, topLevelTracked } from '../fingerprint/walk.js';
import type { ObservedFile } from '../fingerprint/walk.js';
import { collectPackages } from '../fingerprint/observe.js';
import { createConfigTextReader } from '../fingerprint/config-text.js';
import type { Root } from '../root.js';
import { changeSetsNamed } from '../diff/scan.js';
import { diffInScope } from '../diff/scoped-diff.js';
import { verifyAgainstPackages } from '../diff/verify.js';

/**
 * Package database files, inside the root, whose change means packages were installed, removed
 * or upgraded. dpkg replaces `status` by a rename at each checkpoint; the others are listed so a
 * collector for them needs no second place to be named in.
 */
export const DEFAULT_PACKAGE_DATABASES = [
  '/var/lib/dpkg/status',
  '/var/lib/rpm/rpmdb.sqlite',
  '/var/lib/rpm/Packages',
  '/var/lib/rpm/Packages.db',
  '/usr/lib/sysimage/rpm/rpmdb.sqlite',
  '/lib/apk/db/installed',
];

/**
 * Language packages keep their records beside their files, inside the tracked paths: a pip
 * dist-info, a gemspec, an npm global's package.json, a Perl .packlist. A change to one is a
 * package change, read again like a package database. Pure.
 */
export function isPackageRecord(path: string): boolean {
  return (
    /\/[^/]+\.(?:dist|egg)-info(?:\/|$)/.test(path) ||
    /\/specifications\/[^/]+\.gemspec$/.test(path) ||
    /\/lib\/node_modules\/(?:@[^/]+\/)?[^/]+\/package\.json$/.test(path) ||
    /\/(?:\.packlist|perllocal\.pod)$/.test(path)
  );
}

export interface WatchOptions {
  root: Root;
  /** An index (the daemon: records looked up in the state database, none held) or a manifest in memory. */
  manifest: Manifest | ManifestIndex;
  hostname?: string;
  /** Receives each event report, and the report that says the watcher degraded. Awaited: batches never overlap. */
  onReport: (report: Report) => void | Promise<void>;
  /** Called once when the watcher gives up; the caller falls back to scheduled full scans. */
  onDegraded?: (reason: string) => void;
  /** A failure with nowhere else to go (the degraded report could not be handed over). */
  onError?: (err: unknown) => void;
  /** A batch is processed once no change came for this long. */
  debounceMs?: number;
  /** ...or at the latest this long after its first change, so a long install still reports. */
  maxWaitMs?: number;
  /**
   * At most this many folders are watched; beyond it the watcher gives up (degraded) rather than
   * take the kernel's last inotify watches from every other program on the host.
   */
  maxWatchedDirs?: number;
  packageDatabases?: readonly string[];
  collectors?: readonly Collector[];
  now?: () => Date;
  /**
   * How the folder watcher is made (default: `defaultWatcher`); tests pass one that keeps the
   * instance to inject errors.
   */
  createWatcher?: (options: FolderWatchOptions) => DirWatcher;
}

export interface RealtimeWatch {
  /** Resolves once the initial crawl is done: from then on every change is seen. */
  readonly ready: Promise<void>;
  state(): WatchState;
  /** Number of folders holding an inotify watch. */
  watchedDirs(): number;
  /** Resolves when no change is waiting for its batch and no batch is being processed. */
  idle(): Promise<void>;
  /**
   * Runs `fn` between batches, never during one: a full scan that ran beside a batch could
   * report a path's older state after the batch reported its newer one.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

const DEFAULT_DEBOUNCE_MS = 200;
/** Under the daemon's quiet time (5 s): the compaction that follows gives the memory back. */
const HOLD_PACKAGE_STATE_MS = 4_000;
const DEFAULT_MAX_WAIT_MS = 2000;

/**
 * Watches the tracked paths of the manifest's policy and turns each burst of changes into one
 * `event` report covering just the touched paths.
 *
 * Only folders carry an inotify watch: a folder's watch already reports every change to the
 * entries in it (create, write, chmod, rename, delete), so files are never watched one by one
 * and a host's /usr costs its folders' worth of watches, not its files'. The watches are held
 * by one inotifywait child where inotify-tools is installed (inotify-child.ts), else by one
 * fs.watch per folder (folder-watch.ts); neither holds anything else per path: an event names
 * the touched entry, and the batch reads it again. New folders get their watches as they appear, ignored ones never do. Links are
 * never followed: merged-/usr's `/bin -> usr/bin` is watched as /usr/bin, and a link's own
 * change shows in its folder's watch.
 *
 * A batch that fails (a read error, `onReport` throwing) makes the watcher degraded rather than
 * drop the changes silently: the caller's full scans then cover them.
 */
export function startWatch(opts: WatchOptions): RealtimeWatch {
  const { root } = opts;
  const index = isManifestIndex(opts.manifest) ? opts.manifest : memoryIndex(opts.manifest);
  const manifest = index.header;
  const policy = manifest.policy;
  const configTexts = createConfigTextReader(root, policy);
  const now = opts.now ?? (() => new Date());
  const debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  const maxWaitMs = opts.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
  const maxDirs = opts.maxWatchedDirs ?? Number.POSITIVE_INFINITY;
  const ignoredByPolicy = compileGlobs(policy.ignored);
  const tops = topLevelTracked(policy.tracked).filter((t) => !ignoredByPolicy(t));
  const databases = new Set(opts.packageDatabases ?? DEFAULT_PACKAGE_DATABASES);
  const databaseDirs = new Set([...databases].map((d) => path.posix.dirname(d)));
  const hostPath = (inside: string): string => root.hostPath(inside);
  const inside = (host: string): string => (root.dir === '' ? host : host.slice(root.dir.length) || '/');
  const tracked = (p: string): boolean => tops.some((t) => isUnder(p, t)) && !ignoredByPolicy(p);

  let watchState: WatchState = { state: 'ok' };
  let closed = false;

  // Changes waiting for their batch: inside path → whether its whole subtree must be read again.
  let pending = new Map<string, boolean>();
  let pendingDb = false;
  let firstChangeAt = 0;
  // When the pending batch's first change was seen: its report's scannedAt. The batch may wait
  // behind another one (or a busy machine) before it is read, and the hold during a package
  // transaction must know it began while the transaction ran, not when it was read.
  let batchSince: Date | undefined;
  let timer: NodeJS.Timeout | undefined;
  let processing: Promise<void> = Promise.resolve();
  let inFlight = 0;

  // The packages of the last read, as fresh strings (not slices of the database texts). Which
  // package owns which path (13.5k paths, ~4 MB with the texts they are cut from, on the 106k
  // tree) is held only while batches come: it is read again for the first batch after a pause.
  let packages: PackageRecord[] = [];
  let held: { owned: Map<string, OwnedFile>; changeSets: ChangeSet[] } | undefined;
  let dropTimer: NodeJS.Timeout | undefined;
  const hold = (state: { owned: Map<string, OwnedFile>; changeSets: ChangeSet[] }): void => {
    held = state;
    clearTimeout(dropTimer);
    dropTimer = setTimeout(() => (held = undefined), HOLD_PACKAGE_STATE_MS).unref();
  };

  const dbDirsOutside = [...databaseDirs].filter((d) => !tracked(d));
  // Only paths that exist are watched: a missing one (`/lib32`, an rpm folder on a Debian host)
  // has nothing to report, and its parent is never tracked.
  const single = dbDirsOutside.map(hostPath).filter(exists);
  const options: FolderWatchOptions = {
    trees: tops.map(hostPath).filter(exists),
    single,
    // Below a database folder but not tracked: its entries (dpkg's info/ with thousands of
    // files) need no watch, the folder's own watch names the database file when it changes.
    ignored: (dir) => !tracked(inside(dir)),
    maxDirs: maxDirs + single.length,
  };
  const watcher = (opts.createWatcher ?? defaultWatcher)(options);

  const touch = (host: string, deep: boolean): void => {
    if (closed) return;
    const ins = inside(host);
    if (databases.has(ins) || isPackageRecord(ins)) {
      pendingDb = true;
      arm();
    }
    if (!tracked(ins)) return;
    pending.set(ins, (pending.get(ins) ?? false) || deep);
    arm();
  };

  const arm = (): void => {
    const t = Date.now();
    if (timer === undefined) firstChangeAt = t;
    else clearTimeout(timer);
    batchSince ??= now();
    const delay = Math.max(0, Math.min(debounceMs, firstChangeAt + maxWaitMs - t));
    timer = setTimeout(flush, delay);
  };

  const flush = (): void => {
    timer = undefined;
    const batch = pending;
    const db = pendingDb;
    const since = batchSince ?? now();
    pending = new Map();
    pendingDb = false;
    batchSince = undefined;
    if (batch.size === 0 && !db) return;
    inFlight++;
    processing = processing
      .then(() => processBatch(batch, db, since))
      .catch((err: unknown) => degrade(`event scan failed: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => {
        inFlight--;
      });
  };

  watcher.on('change', (dir: string, name: string) => {
    const p = path.join(dir, name);
    touch(p, false);
    // Events on the watched folder itself carry the folder's own name.
    if (name === path.basename(dir)) touch(dir, false);
    if (!tracked(inside(p))) return;
    // A new folder (mkdir, mv into a tracked path, a package's new directory) is read whole once
    // its watches are attached: what was written into it before they existed is not lost. A
    // folder that went away is read whole too: everything below it went with it.
    void watcher.reconcile(p).then((whole) => {
      if (whole) touch(p, true);
    });
  });
  watcher.on('error', (err: unknown) => {
    const e = err as NodeJS.ErrnoException;
    const reason =
      e?.code === 'ENOSPC'
        ? 'the kernel inotify watch limit is reached (fs.inotify.max_user_watches); falling back to scheduled full scans'
        : e?.code === 'EWATCHLIMIT'
          ? `watch limit reached: more than ${maxDirs} folders to watch; falling back to scheduled full scans`
          : `watcher error${e?.code ? ` ${e.code}` : ''}: ${e?.message ?? String(err)}; falling back to scheduled full scans`;
    degrade(reason);
  });

  // Ready when both the crawl and the first package read are done; a watcher that gave up (or
  // was closed) during its crawl is ready too: there is nothing more to wait for.
  let crawled!: () => void;
  const crawl = new Promise<void>((resolve) => {
    crawled = resolve;
  });
  void watcher.ready.then(() => crawled());
  const ready = (async () => {
    const state = await collectPackages(root, opts.collectors);
    packages = JSON.parse(JSON.stringify(state.packages)) as PackageRecord[];
    hold(state);
    await crawl;
  })();

  function degrade(reason: string): void {
    if (watchState.state === 'degraded' || closed) return;
    watchState = { state: 'degraded', reason };
    crawled();
    // What was already seen is still reported, then the report that says realtime is off.
    if (timer !== undefined) {
      clearTimeout(timer);
      flush();
    }
    inFlight++;
    processing = processing
      .then(async () => {
        watcher.close();
        await opts.onReport(buildReport({ paths: [], subtrees: [], packages: false }, [], [], [], { files: 0, bytesHashed: 0, t0: performance.now(), started: now() }));
      })
      // The chain must go on (full scans queue behind it); the failure goes where errors go.
      .catch((err: unknown) => opts.onError?.(err))
      .finally(() => {
        inFlight--;
      });
    opts.onDegraded?.(reason);
  }

  function buildReport(scope: ReportScope, findings: Report['findings'], changeSets: readonly ChangeSet[], warnings: ScanWarning[], s: { files: number; bytesHashed: number; t0: number; started: Date }): Report {
    return {
      schema: REPORT_SCHEMA,
      scan: 'event',
      scope,
      watch: watchState,
      image: { name: manifest.image.name, version: manifest.image.version },
      host: { hostname: opts.hostname ?? osHostname(), root: root.dir === '' ? '/' : root.dir },
      scannedAt: s.started.toISOString(),
      summary: summarize(findings),
      stats: { files: s.files, packages: packages.length, bytesHashed: s.bytesHashed, durationMs: Math.round(performance.now() - s.t0) },
      findings,
      ...(() => {
        const named = changeSetsNamed(findings, changeSets);
        return named.length > 0 ? { changeSets: named } : {};
      })(),
      warnings,
    };
  }

  async function processBatch(batch: Map<string, boolean>, dbChanged: boolean, started: Date): Promise<void> {
    const t0 = performance.now();
    const warnings: ScanWarning[] = [];
    const extra = new Set<string>();
    const previous = held;
    let current = previous;
    if (dbChanged || current === undefined) {
      const fresh = await collectPackages(root, opts.collectors);
      current = fresh;
      if (dbChanged) {
        warnings.push(...fresh.warnings);
        // Every path of a package that changed since the last read is read again, so its finding
        // carries all of its files even when they were written in an earlier batch. The paths it
        // owned at the last read are known while that read is held; past a pause, those the
        // manifest holds are (a path it added since then is left to the next full scan).
        const changed = changedPackages(packages, fresh.packages);
        const ownedBy = (o: OwnedFile | { owner?: { ecosystem: string; name: string } }): boolean =>
          o.owner !== undefined && changed.has(`${o.owner.ecosystem}:${o.owner.name}`);
        for (const [p, o] of fresh.owned) if (ownedBy(o) && tracked(p)) extra.add(p);
        for (const [p, o] of previous?.owned ?? []) if (ownedBy(o) && tracked(p)) extra.add(p);
        for (const p of index.ownedBy(changed)) if (tracked(p)) extra.add(p);
        packages = JSON.parse(JSON.stringify(fresh.packages)) as PackageRecord[];
      }
    }
    hold(current);
    const { owned, changeSets } = current;
    const plan = await planBatch(root, index, batch, extra);
    const files: ObservedFile[] = [];
    let bytesHashed = 0;
    const read = async (p: Policy): Promise<void> => {
      const fp = await fingerprint(root, p);
      files.push(...fp.files);
      warnings.push(...fp.warnings);
      bytesHashed += fp.bytesHashed;
    };
    const walk = [...plan.paths, ...plan.subtrees];
    if (walk.length > 0) await read({ ...policy, tracked: walk });
    // A folder whose own mode or owner changed is read alone, not with everything below it.
    for (const d of plan.shallowDirs) await read({ ...policy, tracked: [d], ignored: [...policy.ignored, `${d}/*`] });
    const scope: ReportScope = { paths: [...plan.paths, ...plan.shallowDirs].sort(), subtrees: plan.subtrees, packages: dbChanged };
    const obs = { packages, owned, changeSets, files };
    // Only the records this batch compares: the rest of the manifest stays on disk.
    const cut = index.cut(scope.paths, scope.subtrees);
    const verdicts = await verifyAgainstPackages(root, selectForVerification(cut, obs), owned);
    const findings = diffInScope(cut, obs, verdicts, scope);
    // The before texts of changed config files come from the same records.
    const before = new Map<string, FileRecord>(cut.files.filter((f) => f.rawPath === undefined && configTexts.covers(f.path)).map((f) => [f.path, f]));
    await configTexts.fillFindings(findings, (p) => before.get(p));
    if (closed) return;
    await opts.onReport(buildReport(scope, findings, changeSets, warnings, { files: files.length, bytesHashed, t0, started }));
  }

  return {
    ready,
    state: () => watchState,
    watchedDirs: () => watcher.watchedDirs(),
    idle: async () => {
      // A batch may arm the next one (changes during processing): wait until all is quiet.
      while (timer !== undefined || inFlight > 0) {
        if (timer !== undefined) await new Promise((r) => setTimeout(r, debounceMs));
        await processing;
      }
    },
    exclusive: <T>(fn: () => Promise<T>): Promise<T> => {
      const run = processing.then(fn);
      inFlight++;
      processing = run.then(
        () => undefined,
        () => undefined,
      ).finally(() => {
        inFlight--;
      });
      return run;
    },
    close: async () => {
      clearTimeout(dropTimer);
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      closed = true;
      crawled();
      await processing;
      watcher.close();
    },
  };
}

/**
 * The folder watches in one inotifywait child when inotify-tools is installed (the daemon then
 * holds nothing per folder), else one fs.watch per folder in the daemon.
 */
export function defaultWatcher(options: FolderWatchOptions): DirWatcher {
  return findInotifyReader() === undefined ? new FolderWatch(options) : new InotifyChildWatch(options);
}

function exists(hostPath: string): boolean {
  try {
    lstatSync(hostPath);
    return true;
  } catch {
    return false;
  }
}

/** `ecosystem:name` of every package added, removed, or changed in version or arch. Pure. */
export function changedPackages(before: readonly PackageRecord[], after: readonly PackageRecord[]): Set<string> {
  const key = (p: PackageRecord): string => `${p.ecosystem}:${p.name}:${p.arch ?? ''}:${p.version}`;
  const was = new Set(before.map(key));
  const now = new Set(after.map(key));
  const out = new Set<string>();
  for (const p of before) if (!now.has(key(p))) out.add(`${p.ecosystem}:${p.name}`);
  for (const p of after) if (!was.has(key(p))) out.add(`${p.ecosystem}:${p.name}`);
  return out;
}

export interface BatchPlan {
  /** Entries read on their own (files, links, unchanged-type folders read shallowly go below). */
  paths: string[];
  /** Folders read with everything below them, and vanished paths (all below them vanished too). */
  subtrees: string[];
  /** Folders the manifest already holds as folders: only the folder itself is read again. */
  shallowDirs: string[];
}

/** Decides how each touched path is read again. Only `lstat` touches the disk. */
async function planBatch(root: Root, index: ManifestIndex, batch: ReadonlyMap<string, boolean>, extra: ReadonlySet<string>): Promise<BatchPlan> {
  const entries = new Map<string, boolean>(batch);
  for (const p of extra) if (!entries.has(p)) entries.set(p, false);
  const paths: string[] = [];
  const subtrees: string[] = [];
  const shallowDirs: string[] = [];
  // Parents first, so anything below a subtree that is read whole is dropped.
  for (const p of [...entries.keys()].sort()) {
    if (subtrees.some((s) => isUnder(p, s))) continue;
    let isDir: boolean;
    try {
      isDir = (await lstat(root.hostPath(p))).isDirectory();
    } catch {
      subtrees.push(p); // gone, with everything that was below it
      continue;
    }
    if (!isDir) paths.push(p);
    // A shallow read ignores `<dir>/*`: a name with glob characters of its own is read whole.
    else if (entries.get(p) === true || index.typeOf(p) !== 'dir' || /[*?]/.test(p)) subtrees.push(p);
    else shallowDirs.push(p);
  }
  const under = (p: string): boolean => subtrees.some((s) => isUnder(p, s));
  return { paths: paths.filter((p) => !under(p)), subtrees, shallowDirs: shallowDirs.filter((p) => !under(p)) };
}
