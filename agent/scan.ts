import { hostname } from 'node:os';
import type { FileRecord, Manifest } from '../shared/manifest.js';
import { REPORT_SCHEMA, summarize } from '../shared/report.js';
import type { Report } from '../shared/report.js';
import type { Collector } from './collectors/types.js';
import { comparePackages, compareGone, comparePresent, fileRules, needsVerification, nestFindings, resolveCause } from './differ.js';
import type { FileFinding } from './differ.js';
import { TreeWalker, comparePathBytes } from './fingerprint.js';
import type { FingerprintOptions, ObservedFile, WalkStats } from './fingerprint.js';
import { memorySource, recordKey } from './manifest-stream.js';
import type { ManifestSource } from './manifest-stream.js';
import { collectPackages } from './observe.js';
import type { Root } from './root.js';
import { verifyAgainstPackages } from './verify.js';

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
  const pkgs = await collectPackages(root, opts.collectors);
  const packages = comparePackages(header.packages, pkgs.packages);
  const expected = new RecordCursor(source.records());
  const packageOnly = (await expected.peek()) === undefined;
  const rules = fileRules(header.policy, pkgs.owned, packages.unchanged, packageOnly);

  const links = new Map<string, ObservedFile>();
  const present: Array<{ seq: number; ff: FileFinding }> = [];
  const gone: FileFinding[] = [];
  const deferred: Array<{ seq: number; was: FileRecord | undefined; now: ObservedFile }> = [];
  let seq = 0;
  const walker = new TreeWalker(root, header.policy, opts);
  const takeGoneBefore = async (key: Buffer | undefined): Promise<FileRecord | undefined> => {
    for (;;) {
      const next = await expected.peek();
      if (next === undefined) return undefined;
      const order = key === undefined ? -1 : comparePathBytes(next.key, key);
      if (order > 0) return undefined;
      expected.skip();
      if (order === 0) return next.record;
      if (!rules.ignored(next.record.path)) gone.push(compareGone(rules, next.record));
    }
  };
  for await (const batch of walker.batches()) {
    for (const file of batch) {
      if (rules.ignored(file.path)) continue;
      if (file.type === 'symlink' && file.rawPath === undefined) links.set(file.path, file);
      const was = packageOnly ? undefined : await takeGoneBefore(recordKey(file));
      const n = seq++;
      // Its verdict needs a second read with the package database's algorithm: after the walk.
      if (needsVerification(file, was, pkgs.owned)) deferred.push({ seq: n, was, now: file });
      else for (const ff of comparePresent(rules, was, file, undefined)) present.push({ seq: n, ff });
    }
  }
  if (!packageOnly) await takeGoneBefore(undefined);

  const verdicts = await verifyAgainstPackages(root, deferred.map((d) => d.now), pkgs.owned);
  for (const d of deferred) for (const ff of comparePresent(rules, d.was, d.now, verdicts.get(d.now.path))) present.push({ seq: d.seq, ff });
  present.sort((a, b) => a.seq - b.seq);
  // Present paths first, then the gone ones: the order `diff` produces, so ties sort alike.
  const fileFindings = [...present.map((p) => resolveCause(p.ff, links, pkgs.owned)), ...gone];
  const findings = nestFindings(packages.findings, fileFindings);
  opts.onStats?.(walker.stats);
  return {
    schema: REPORT_SCHEMA,
    image: { name: header.image.name, version: header.image.version },
    host: { hostname: opts.hostname ?? hostname(), root: root.dir === '' ? '/' : root.dir },
    scannedAt: started.toISOString(),
    summary: summarize(findings),
    stats: { files: walker.stats.files, packages: pkgs.packages.length, bytesHashed: walker.stats.bytesHashed, durationMs: Math.round(performance.now() - t0) },
    findings,
    warnings: [...pkgs.warnings, ...walker.warnings],
  };
}

/** Reads a stream of record batches one record at a time, with a look-ahead of one. */
class RecordCursor {
  private batch: FileRecord[] = [];
  private i = 0;
  private head: { record: FileRecord; key: Buffer } | undefined;
  private done = false;
  private readonly it: AsyncIterator<FileRecord[]>;

  constructor(records: AsyncIterable<FileRecord[]>) {
    this.it = records[Symbol.asyncIterator]();
  }

  async peek(): Promise<{ record: FileRecord; key: Buffer } | undefined> {
    if (this.head !== undefined || this.done) return this.head;
    while (this.i >= this.batch.length) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        return undefined;
      }
      this.batch = r.value;
      this.i = 0;
    }
    const record = this.batch[this.i++]!;
    this.head = { record, key: recordKey(record) };
    return this.head;
  }

  skip(): void {
    this.head = undefined;
  }
}
