import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { FileRecord, Manifest } from '../../shared/manifest.js';
import { REPORT_SCHEMA, summarize } from '../../shared/summary.js';
import type { ChangeSetInfo, Finding, Report } from '../../shared/report.js';
import type { ChangeSet, Collector } from '../collect/types.js';
import { comparePackages, compareGone, comparePresent, fileRules, finishFindings, isKnownClean, missingPackageFiles, needsVerification, resolveCauses } from './differ.js';
import type { FileFinding } from './differ.js';
import { comparePaths } from '../fingerprint/walk.js';
import type { FingerprintOptions, ObservedFile, WalkStats, Walked } from '../fingerprint/walk.js';
import { loadRecordSchema, memorySource } from '../manifest/stream.js';
import type { ManifestSource, RecordBatch } from '../manifest/stream.js';
import { walkWhileCollecting } from '../fingerprint/observe.js';
import type { Root } from '../root.js';
import { verifyAgainstPackages } from './verify.js';
import { compileSensitive, uidZeroAccounts } from './sensitive.js';
import { attributeActors } from './attribute-actors.js';
import { createConfigTextReader } from '../fingerprint/config-text.js';

export interface ScanOptions extends FingerprintOptions {
  now?: () => Date;
  hostname?: string;
  collectors?: readonly Collector[];
  /** Receives the walk's counters (files hashed, cache hits) when the scan ends. */
  onStats?: (stats: WalkStats) => void;
}

/** Observes `root`, verifies package-owned files, diffs against `manifest`: one report. */
export async function scanRoot(root: Root, manifest: Manifest, opts: ScanOptions = {}): Promise<Report> {
  return scanSource(root, memorySource(manifest), opts);
}

/**
 * The same as `scanRoot` for a manifest that streams: the walk and the manifest's records are
 * merged in walk order, path by path, with the differ's own per-path rules, so neither the
 * observation nor the manifest is ever held whole. What is kept is bounded by the drift (the
 * findings), the package databases and the tree's symbolic links.
 */
export async function scanSource(root: Root, source: ManifestSource, opts: ScanOptions = {}): Promise<Report> {
  const now = opts.now ?? (() => new Date());
  const started = now();
  const t0 = performance.now();
  const { header } = source;
  const { walker, walked: walk, packages: pkgs } = await walkWhileCollecting(root, header.policy, opts, opts.collectors);
  const packages = comparePackages(header.packages, pkgs.packages);
  const expected = new RecordCursor(source.batches());
  let packageOnly: boolean;
  try {
    packageOnly = !(await expected.fill());
  } catch (err) {
    await walk.close(); // a manifest unreadable from its first record: the walk is not read
    throw err;
  }
  const rules = fileRules(header.policy, pkgs.owned, packages.unchanged, packageOnly);

  const texts = createConfigTextReader(root, header.policy);
  // The manifest's records of changed config files: their text is the diff's before side.
  const textRecords = new Map<string, FileRecord>();
  const keepText = (was: FileRecord | undefined, ffs: readonly FileFinding[]): void => {
    if (was !== undefined && ffs.some((ff) => ff.finding.kind !== 'file-metadata') && texts.covers(was.path)) textRecords.set(was.path, was);
  };
  const links = new Map<string, ObservedFile>();
  const present: Array<{ seq: number; ff: FileFinding }> = [];
  const gone: FileFinding[] = [];
  const deferred: Array<{ seq: number; was: FileRecord | undefined; now: ObservedFile }> = [];
  let seq = 0;
  const seenOwned = new Set<string>();
  /**
   * Moves the manifest side up to `file`: what it passes is gone; returns the record of `file`.
   * 'refill': await `expected.fill()` and ask again. A path known clean (a string) passes its
   * own record unread.
   */
  const takeGoneBefore = (file: Walked | undefined): FileRecord | undefined | 'refill' => {
    for (;;) {
      const at = expected.path();
      if (at === undefined) return expected.exhausted ? undefined : 'refill';
      const order = file === undefined ? -1 : typeof file === 'string' ? comparePaths(at, expected.rawPath(), file, undefined) : comparePaths(at, expected.rawPath(), file.path, file.rawPath);
      if (order > 0) return undefined;
      if (order === 0 && typeof file === 'string') {
        expected.skip();
        return undefined;
      }
      const next = expected.record();
      if (next === undefined) return 'refill';
      expected.skip();
      if (order === 0) return next;
      if (!rules.ignored(next.path)) {
        const ff = compareGone(rules, next);
        keepText(next, [ff]);
        gone.push(ff);
      }
    }
  };
  const recordOf = async (file: Walked | undefined): Promise<FileRecord | undefined> => {
    for (;;) {
      const got = takeGoneBefore(file);
      if (got !== 'refill') return got;
      await expected.fill();
    }
  };
  for await (const batch of walk) {
    // The walk leaves out what the same policy ignores: no path here needs that check again.
    for (const file of batch) {
      if (typeof file === 'string') {
        // Found clean against this manifest with the same lstat: nothing about it can differ.
        if (takeGoneBefore(file) === 'refill') await recordOf(file);
        continue;
      }
      if (file.type === 'symlink' && file.rawPath === undefined) links.set(file.path, file);
      let was: FileRecord | undefined;
      if (!packageOnly) {
        // Synchronous while the manifest's current batch lasts: an await per batch, not per path.
        const got = takeGoneBefore(file);
        was = got === 'refill' ? await recordOf(file) : got;
      }
      if (packageOnly && pkgs.owned.has(file.path)) seenOwned.add(file.path);
      const n = seq++;
      // Clean on the differ's fast path, whatever the packages say: the walk may remember it.
      walker.settle(file, was !== undefined && !packageOnly && isKnownClean(was, file));
      // Its verdict needs a second read with the package database's algorithm: after the walk.
      if (needsVerification(file, was, pkgs.owned)) deferred.push({ seq: n, was, now: file });
      else {
        const ffs = comparePresent(rules, was, file, undefined);
        keepText(was, ffs);
        for (const ff of ffs) present.push({ seq: n, ff });
      }
    }
  }
  if (!packageOnly) await recordOf(undefined);
  else gone.push(...missingPackageFiles(rules, header.policy.tracked, (p) => seenOwned.has(p)));

  const verdicts = await verifyAgainstPackages(root, deferred.map((d) => d.now), pkgs.owned);
  for (const d of deferred) {
    const ffs = comparePresent(rules, d.was, d.now, verdicts.get(d.now.path));
    keepText(d.was, ffs);
    for (const ff of ffs) present.push({ seq: d.seq, ff });
  }
  present.sort((a, b) => a.seq - b.seq);
  // Present paths first, then the gone ones: the order `diff` produces, so ties sort alike.
  const fileFindings = resolveCauses(present.map((p) => p.ff), gone, links, pkgs.owned);
  const uidZero = uidZeroAccounts(await readFile(root.hostPath('/etc/passwd'), 'utf8').catch(() => ''));
  const findings = finishFindings(packages.findings, fileFindings, pkgs.changeSets, { sensitive: compileSensitive(header.policy), uidZero });
  const changeSets = changeSetsNamed(findings, pkgs.changeSets);
  await attributeActors(root, findings, now());
  await texts.fillFindings(findings, (path) => textRecords.get(path));
  opts.onStats?.(walker.stats);
  return {
    schema: REPORT_SCHEMA,
    image: { name: header.image.name, version: header.image.version },
    host: { hostname: opts.hostname ?? hostname(), root: root.dir === '' ? '/' : root.dir },
    scannedAt: started.toISOString(),
    summary: summarize(findings),
    stats: { files: walker.stats.files, packages: pkgs.packages.length, bytesHashed: walker.stats.bytesHashed, durationMs: Math.round(performance.now() - t0) },
    findings,
    ...(changeSets.length > 0 ? { changeSets } : {}),
    warnings: [...pkgs.warnings, ...walker.warnings],
  };
}

/** The change sets that findings name, as a report carries them. Pure; event reports use it too. */
export function changeSetsNamed(findings: readonly Finding[], changeSets: readonly ChangeSet[]): ChangeSetInfo[] {
  const named = new Set(findings.map((f) => f.changeSet).filter((id): id is string => id !== undefined));
  return changeSets.filter((cs) => named.has(cs.id)).map(({ events, ...cs }) => ({ ...cs, packages: events.length }));
}

/** Reads a stream of record batches one record at a time, with a look-ahead of one. */
class RecordCursor {
  private batch: RecordBatch | undefined;
  private i = 0;
  private done = false;
  private readonly it: AsyncIterator<RecordBatch>;

  constructor(batches: AsyncIterable<RecordBatch>) {
    this.it = batches[Symbol.asyncIterator]();
  }

  /** The next record's path while the current batch lasts; undefined when `fill` must be awaited. */
  path(): string | undefined {
    return this.batch !== undefined && this.i < this.batch.length ? this.batch.path(this.i) : undefined;
  }

  rawPath(): string | undefined {
    return this.batch!.rawPath(this.i);
  }

  /** The next record; undefined when `fill` must be awaited (its schema is not loaded yet). */
  record(): FileRecord | undefined {
    return this.batch!.record(this.i);
  }

  /**
   * Awaits what the next record needs: the next batch when the current one is used up (an await
   * per batch, not per record), or the schema of a record of an unusual shape. False at the end.
   */
  async fill(): Promise<boolean> {
    if (this.batch !== undefined && this.i < this.batch.length) {
      if (this.batch.record(this.i) === undefined) await loadRecordSchema();
      return true;
    }
    while (!this.done && (this.batch === undefined || this.i >= this.batch.length)) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else {
        this.batch = r.value;
        this.i = 0;
      }
    }
    return this.batch !== undefined && this.i < this.batch.length;
  }

  skip(): void {
    this.i++;
  }

  get exhausted(): boolean {
    return this.done && (this.batch === undefined || this.i >= this.batch.length);
  }
}
