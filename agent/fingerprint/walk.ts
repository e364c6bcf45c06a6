import { isUtf8 } from 'node:buffer';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { FileRecord, FileType } from '../../shared/manifest.js';
import type { ScanWarning } from '../../shared/report.js';
import { compileGlobsForChildren, isUnder } from '../../shared/policy.js';
import type { Policy } from '../../shared/policy.js';
import { Budget } from './budget.js';
import type { BudgetLimits } from './budget.js';
import { hashPoolFor } from './hash-pool.js';
import type { HashPool } from './hash-pool.js';
import type { HashResult } from './hash-pool.js';
import type { FileStat, StatCache } from './stat-cache.js';
import { lstatTuple } from './clean-paths.js';
import type { CleanPaths } from './clean-paths.js';
import type { Root } from '../root.js';
import { readSecurityXattrs } from './xattrs.js';
import { errorCode, isPseudoFs, mountNotCrossed, pseudoFsSkipped, warn } from './walk-checks.js';
import { CLEAN, PackedStat, RECORD, STAT_BYTES, THREADS_AFTER, packPending } from './walk-codec.js';
import type { PendingPath, WalkStat } from './walk-codec.js';
import type { WalkPool } from './walk-pool.js';
import type { SecurityXattrs } from './xattrs.js';
import type { PackageCache } from '../collect/cache.js';

/** A file record as observed, plus why its content could not be read, when it could not. */
export interface ObservedFile extends FileRecord {
  unreadable?: string;
}

/**
 * What `entries()` yields: a record, or only the path (a string) of one whose lstat is the one
 * it had when last found clean against the same manifest (`FingerprintOptions.clean`).
 */
export type Walked = ObservedFile | string;

/** What a walk did: the counters tests and benchmarks read instead of timing it. */
export interface WalkStats {
  /** Paths recorded (every type). */
  files: number;
  /** Regular files whose content was read and hashed in this walk (hard links count once). */
  hashed: number;
  /** Regular files whose digest came from the stat cache. */
  cacheHits: number;
  bytesHashed: number;
  /** The most hard-link groups (inodes with names still to come) held at once: bounded. */
  linkGroupsPeak: number;
  /** Regular files whose security xattrs were read (not taken from the stat cache). */
  xattrsRead: number;
  /** Paths passed on as known clean (`FingerprintOptions.clean`): neither recorded nor looked up. */
  knownClean: number;
  /** Jobs the walk threads walked (0: all of it walked on the main thread). */
  walkJobs: number;
  /** Hashing threads the walk started (0: nothing to hash); at most `concurrency`. */
  hashThreads: number;
  /** Walk threads the walk started (0: walked on the main thread); at most `walkThreads`. */
  walkThreads: number;
}

export interface Fingerprint {
  files: ObservedFile[];
  warnings: ScanWarning[];
  bytesHashed: number;
  stats: WalkStats;
}

export interface FingerprintOptions {
  /** Hashing threads; default: the number of cores. */
  concurrency?: number;
  onProgress?: (filesSeen: number, bytesHashed: number) => void;
  /** Digests of files whose stat did not change since they were last hashed. */
  cache?: StatCache;
  /** Paces the walk (files/s) and the hashing (bytes/s). */
  budget?: BudgetLimits;
  /** CPU nice level of the hashing threads. */
  nice?: number;
  /** Walk into other filesystems mounted below a tracked path (pseudo filesystems never). */
  crossMounts?: boolean;
  /**
   * A file changed this recently before the walk started is hashed but not remembered: on a
   * filesystem with coarse timestamps a write right after our read could leave its stat as it was.
   */
  racyWindowMs?: number;
  /** Called with the path of every file whose content is actually read. */
  onHashed?: (path: string) => void;
  /**
   * At most this many hard-link groups are remembered (default 10,000): a group whose other
   * names lie outside the walk would be held to its end. Past it the oldest is forgotten, and a
   * name of it that still comes is hashed again.
   */
  maxLinkGroups?: number;
  /**
   * The paths last found clean against this manifest: one whose lstat is unchanged comes from
   * `entries()` as its path alone. Records that may be remembered as clean are settled with
   * `settle` in the order they came.
   */
  clean?: CleanPaths;
  /**
   * Threads that take the lstat of every path and compare it with the clean paths, on a large
   * tree with clean paths to compare against (default: the number of cores; 0: none).
   */
  walkThreads?: number;
  /** Walk threads start for a tree of this many clean paths, else after this many paths walked here (default THREADS_AFTER; tests walk small trees). */
  walkThreadsAfter?: number;
  /** Once started, wait for the walk threads instead of walking on meanwhile (tests: a small tree ends first). */
  waitForWalkThreads?: boolean;
  /**
   * Walk threads made before the policy was known (`walkThreadsAhead`: they boot while the
   * manifest is read), taken when the walk starts its threads and they were made for its tree
   * and clean paths. The caller closes them.
   */
  walkPool?: WalkPool;
  /** The package databases as last read, by the stat of what they read (walkWhileCollecting reads them). */
  packages?: PackageCache;
}

const SLASH = Buffer.from('/');
/** Records queued for hashing or waiting to be emitted in order: bounds memory on any tree. */
const WINDOW = 2048;
const BATCH_FILES = 128;
const BATCH_BYTES = 8 * 1024 * 1024;
const EMIT_EVERY = 512;
const DEFAULT_RACY_MS = 2000;
const MAX_LINK_GROUPS = 10_000;

interface Entry {
  rec: ObservedFile;
  /** The read that gives this record its digest, while it is not done. */
  job?: Job;
}

/** One content read, shared by all hard links of an inode. */
interface Job {
  host: Buffer;
  stat: FileStat;
  links: ObservedFile[];
  done: boolean;
  /** Settles when the batch this job was sent in is done: one promise per batch, not per file. */
  sent?: Promise<void>;
  sha256?: string;
  unreadable?: string;
  /** The security xattrs read right after the walk's lstat (undefined: not read, or failed). */
  xattrs?: SecurityXattrs;
}

/**
 * Walks the tracked paths of `policy` inside `root` and yields every entry, in a fixed order
 * (depth first, names byte-sorted: the order of `comparePathBytes`), in batches: type, mode,
 * owner, size, link target and the sha256 of regular files. Never follows a link, never opens a
 * FIFO, socket or device, never walks a pseudo filesystem nor (unless asked) another
 * filesystem below a tracked path. Memory stays bounded by WINDOW, whatever the tree's size.
 */
export class TreeWalker {
  readonly warnings: ScanWarning[] = [];
  readonly stats: WalkStats = { files: 0, hashed: 0, cacheHits: 0, bytesHashed: 0, linkGroupsPeak: 0, xattrsRead: 0, knownClean: 0, walkJobs: 0, hashThreads: 0, walkThreads: 0 };
  /** Records that may be remembered as clean, in the order they are emitted, with their lstat (`settle`). */
  private readonly candidates: Array<{ rec: ObservedFile; inside: Buffer; tuple: Buffer }> = [];
  private candidatesHead = 0;
  /** A string: the path of one known clean (`FingerprintOptions.clean`). */
  private readonly queue: Array<Entry | string> = [];
  private head = 0;
  private batch: Job[] = [];
  private batchBytes = 0;
  private readonly links = new Map<string, { job: Job; remaining: number }>();
  private readonly pool: HashPool;
  private readonly budget: Budget;
  private readonly startedAt = Date.now();
  private readonly racyMs: number;
  /** While set, the walk gives the event loop a turn after every folder (see `shareWith`). */
  private sharing = false;

  constructor(
    private readonly root: Root,
    private readonly policy: Policy,
    private readonly opts: FingerprintOptions = {},
  ) {
    this.pool = hashPoolFor({ ...(opts.concurrency ? { size: opts.concurrency } : {}), ...(opts.nice ? { nice: opts.nice } : {}) });
    this.budget = new Budget(opts.budget ?? {});
    this.racyMs = opts.racyWindowMs ?? DEFAULT_RACY_MS;
    this.rootBuf = Buffer.from(root.dir);
    // Nothing cached: every file will be read, so let the threads boot while the walk starts.
    if (!opts.cache || opts.cache.empty) this.pool.prewarm();
  }

  private readonly rootBuf: Buffer;

  /**
   * Lets other work that waits on I/O (the package databases are read while the walk starts)
   * progress alongside the walk: until `work` settles, the walk yields to the event loop after
   * each folder instead of only every EMIT_EVERY paths.
   */
  shareWith(work: Promise<unknown>): void {
    this.sharing = true;
    const stop = (): void => void (this.sharing = false);
    work.then(stop, stop);
  }

  /** Every record, in walk order; without `FingerprintOptions.clean` (else read `entries()`). */
  batches(): AsyncGenerator<ObservedFile[]> {
    if (this.opts.clean !== undefined) throw new Error('a walk given clean paths is read with entries()');
    return this.entries() as AsyncGenerator<ObservedFile[]>;
  }

  /** Every record in walk order, and with `FingerprintOptions.clean` the paths known clean as strings. */
  async *entries(): AsyncGenerator<Walked[]> {
    const clean = this.opts.clean;
    let threads: WalkPool | undefined;
    let handedOver = false;
    try {
      const ignored = compileGlobsForChildren(this.policy.ignored);
      const reader = this.budget.limited ? undefined : clean?.threadReader();
      const threadCount = this.opts.walkThreads ?? availableParallelism();
      const threadsAfter = this.opts.walkThreadsAfter ?? THREADS_AFTER;
      const startThreads = async (): Promise<WalkPool> => {
        const spec = { threads: threadCount, skip: this.rootBuf.length, crossMounts: this.opts.crossMounts === true, reader: reader! };
        const ahead = this.opts.walkPool;
        let pool: WalkPool;
        if (ahead !== undefined && ahead.fits(spec)) {
          ahead.configure(this.policy.ignored);
          pool = ahead;
        } else {
          const { WalkPool } = await import('./walk-pool.js');
          pool = new WalkPool({ ...spec, ignored: this.policy.ignored });
        }
        if (this.opts.waitForWalkThreads) await pool.whenReady;
        return pool;
      };
      // The last walk of this tree was large (as many paths remembered clean): the threads start
      // now and boot while this thread walks, instead of after it walked that many paths itself.
      if (reader !== undefined && threadCount > 0 && clean!.holdsAtLeast(threadsAfter)) threads = await startThreads();
      let sinceYield = 0;
      const tops = topLevelTracked(this.policy.tracked).filter((top) => !ignored.matches(top));
      walking: for (let t = 0; t < tops.length; t++) {
        const top = tops[t]!;
        const topBuf = Buffer.from(top);
        let st: WalkStat;
        try {
          st = lstatSync(this.host(topBuf));
        } catch (err) {
          if (errorCode(err) !== 'ENOENT') this.warnings.push(warn(err, top));
          continue;
        }
        if (st.isDirectory() && isPseudoFs(this.host(topBuf))) {
          this.warnings.push(pseudoFsSkipped(top));
          continue;
        }
        const topDev = st.dev;
        // Depth first with an explicit stack: deep trees cannot overflow the call stack.
        // Children are stat'ed when they are visited, not when listed: a folder of a million
        // names then costs a million small buffers on the stack, not a million Stats objects.
        const stack: Array<{ host: Buffer; text: string; st?: WalkStat }> = [{ host: this.host(topBuf), text: top, st }];
        const skip = this.rootBuf.length;
        while (stack.length > 0) {
          const item = stack.pop()!;
          const est = item.st ?? lstatSync(item.host, { throwIfNoEntry: false });
          // undefined: vanished between readdir and lstat, so it is simply not there any more
          if (est === undefined) continue;
          const inside = item.host.subarray(skip);
          // Symbolic links always come whole: the causes of findings follow them.
          if (clean !== undefined && !est.isSymbolicLink() && clean.holds(inside, est)) {
            this.stats.files++;
            this.stats.knownClean++;
            this.queue.push(item.text);
            if (!est.isDirectory()) continue;
          } else if (this.visit(item.host, inside, item.text, est).type !== 'dir') continue;
          if (est.dev !== topDev) {
            if (!this.opts.crossMounts) {
              this.warnings.push(mountNotCrossed(item.text));
              continue;
            }
            if (isPseudoFs(this.host(inside))) {
              this.warnings.push(pseudoFsSkipped(item.text));
              continue;
            }
          }
          let names: Buffer[];
          const hostDir = item.host;
          try {
            names = readdirSync(hostDir, { encoding: 'buffer' });
          } catch (err) {
            this.warnings.push(warn(err, item.text));
            continue;
          }
          // Push in reverse so the walk visits names in byte order.
          names.sort((a, b) => Buffer.compare(b, a));
          for (const name of names) {
            // One buffer per child: the path on this machine; the path inside the root is a view of it.
            const host = inside.length === 1 ? Buffer.concat([hostDir, name]) : Buffer.concat([hostDir, SLASH, name]);
            const text = host.toString('utf8', skip);
            // The walk lists no ignored folder: a child is asked about by its name.
            if (!ignored.child(text.slice(text.lastIndexOf('/') + 1), text)) stack.push({ host, text });
          }
          sinceYield += names.length + 1;
          if (this.budget.limited) await this.budget.spend(names.length + 1, 0);
          if (this.sharing) await new Promise<void>((r) => setImmediate(r));
          // A large tree known clean: walk threads start while this thread walks on, and take
          // over what is left once they are up (the minbase ends before it gets here).
          if (reader !== undefined && threadCount > 0 && threads === undefined && this.stats.files >= threadsAfter) threads = await startThreads();
          if (threads?.ready) {
            // Stack order: the tracked folders still to come lie below what this one has left.
            const rest: PendingPath[] = [];
            for (let later = tops.length - 1; later > t; later--) rest.push({ host: this.host(Buffer.from(tops[later]!)), text: tops[later]!, topDev: NaN });
            for (const p of stack) rest.push({ host: p.host, text: p.text, topDev });
            threads.start(packPending(rest));
            handedOver = true;
            break walking;
          }
          if (sinceYield >= EMIT_EVERY || this.queue.length - this.head >= WINDOW) {
            sinceYield = 0;
            yield* this.drain(false);
          }
        }
      }
      if (handedOver && threads !== undefined) {
        const from = threads;
        for (let chunk = await from.next(); chunk !== undefined; chunk = await from.next()) {
          this.takeChunk(chunk);
          from.recycle(chunk);
          yield* this.drain(false);
        }
      }
      yield* this.drain(true);
      this.stats.walkJobs = threads?.jobsWalked ?? 0;
    } finally {
      this.stats.walkThreads = threads?.threads ?? 0;
      await threads?.close();
      this.opts.cache?.flush();
      this.opts.clean?.flush();
      this.stats.hashThreads = this.pool.threadsStarted;
      await this.pool.close();
    }
  }

  /** What a walk thread found, in walk order (walk-codec.ts): entries as the walk here makes them. */
  private takeChunk(chunk: Buffer): void {
    const skip = this.rootBuf.length;
    for (let at = 0; at < chunk.length; ) {
      const tag = chunk[at]!;
      if (tag === CLEAN) {
        const end = at + 3 + chunk.readUInt16LE(at + 1);
        this.stats.files++;
        this.stats.knownClean++;
        this.queue.push(chunk.toString('utf8', at + 3, end));
        at = end;
      } else if (tag === RECORD) {
        const end = at + 3 + chunk.readUInt16LE(at + 1);
        // A copy, not a view: the record's buffers must not hold the whole chunk.
        const host = Buffer.concat([this.rootBuf, chunk.subarray(at + 3, end)]);
        this.visit(host, host.subarray(skip), host.toString('utf8', skip), new PackedStat(chunk, end));
        at = end + STAT_BYTES;
      } else {
        const end = at + 5 + chunk.readUInt32LE(at + 1);
        this.warnings.push(JSON.parse(chunk.toString('utf8', at + 5, end)) as ScanWarning);
        at = end;
      }
    }
  }

  /** Emits the records at the head of the queue whose digests are known; `all` waits for the rest. */
  private async *drain(all: boolean): AsyncGenerator<Walked[]> {
    this.flushBatch();
    this.opts.onProgress?.(this.stats.files, this.stats.bytesHashed);
    // Let worker replies in: the walk itself never gives the event loop a turn.
    await new Promise<void>((r) => setImmediate(r));
    for (;;) {
      const out: Walked[] = [];
      while (this.head < this.queue.length) {
        const entry = this.queue[this.head]!;
        if (typeof entry === 'string') out.push(entry);
        else if (entry.job !== undefined && !entry.job.done) break;
        else out.push(entry.rec);
        this.head++;
      }
      if (this.head > 4096) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      if (out.length > 0) yield out;
      const pending = this.queue.length - this.head;
      if (pending === 0 || (!all && pending < WINDOW)) return;
      await (this.queue[this.head] as Entry).job!.sent;
    }
  }

  private visit(host: Buffer, inside: Buffer, text: string, st: WalkStat): ObservedFile {
    const rec = toRecord(inside, text, st);
    this.stats.files++;
    const entry: Entry = { rec };
    this.queue.push(entry);
    const warned = this.warnings.length;
    if (rec.type === 'symlink') {
      try {
        rec.target = (readlinkSync(host, { encoding: 'buffer' }) as Buffer).toString('utf8');
      } catch (err) {
        this.warnings.push(warn(err, rec.path));
      }
    } else if (rec.type === 'file') {
      const job = this.fileContent(entry, host, inside, st);
      if (job !== undefined) job.xattrs = this.securityXattrs(rec);
    }
    // A path with a warning keeps coming whole, so its warning does too; one changed within the
    // racy window is not remembered, as the stat cache does not remember it.
    if (this.opts.clean !== undefined && rec.type !== 'symlink' && rec.rawPath === undefined && this.warnings.length === warned && st.ctimeMs < this.startedAt - this.racyMs) {
      this.candidates.push({ rec, inside, tuple: lstatTuple(st) });
    }
    return rec;
  }

  /**
   * Tells the walk how the scan judged a record `entries()` gave (every record, in the order
   * given): a record found clean is remembered with the lstat the walk saw, unless its
   * content could not be read.
   */
  settle(rec: ObservedFile, clean: boolean): void {
    const next = this.candidates[this.candidatesHead];
    if (next === undefined || next.rec !== rec) return;
    this.candidatesHead++;
    if (this.candidatesHead > 4096) {
      this.candidates.splice(0, this.candidatesHead);
      this.candidatesHead = 0;
    }
    if (clean && rec.unreadable === undefined) this.opts.clean!.remember(next.inside, next.tuple);
  }

  private xattrsWarned = false;

  /** Reads the file's security xattrs into `rec`; returns them when they were read without a warning. */
  private securityXattrs(rec: ObservedFile): SecurityXattrs | undefined {
    // The addon takes string paths: a name that is not UTF-8 keeps its content check only.
    if (rec.rawPath !== undefined) return undefined;
    this.stats.xattrsRead++;
    const { xattrs, warning } = readSecurityXattrs(this.root.dir + rec.path, rec.path);
    if (xattrs) Object.assign(rec, xattrs);
    if (warning && (warning.code !== 'XATTRS_UNAVAILABLE' || !this.xattrsWarned)) this.warnings.push(warning);
    if (warning?.code === 'XATTRS_UNAVAILABLE') this.xattrsWarned = true;
    return warning === undefined ? (xattrs ?? {}) : undefined;
  }

  /**
   * Gives the record its digest: from another name of the same inode, from the stat cache, or
   * from a read in the hashing threads. Returns the read's job when the file is read now.
   */
  private fileContent(entry: Entry, host: Buffer, inside: Buffer, st: WalkStat): Job | undefined {
    const key = st.nlink > 1 ? `${st.dev}:${st.ino}` : undefined;
    if (key !== undefined) {
      const shared = this.links.get(key);
      if (shared) {
        // Another name of an inode already read (or being read): hash once.
        if (--shared.remaining <= 0) this.links.delete(key);
        if (shared.job.done) applyResult(entry.rec, shared.job);
        else {
          shared.job.links.push(entry.rec);
          entry.job = shared.job;
        }
        this.securityXattrs(entry.rec);
        return undefined;
      }
    }
    const stat: FileStat = { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
    const cached = this.opts.cache?.lookup(inside, stat);
    if (cached !== undefined) {
      this.stats.cacheHits++;
      entry.rec.sha256 = cached.sha256;
      // Setting an xattr moves ctime: with the stat unchanged, the cached ones still hold.
      if (cached.xattrs !== null && entry.rec.rawPath === undefined) Object.assign(entry.rec, cached.xattrs);
      else this.securityXattrs(entry.rec);
      if (key !== undefined) this.rememberLinks(key, { host: inside, stat, links: [], done: true, sha256: cached.sha256 }, st.nlink - 1);
      return undefined;
    }
    const job: Job = { host, stat, links: [entry.rec], done: false };
    entry.job = job;
    if (key !== undefined) this.rememberLinks(key, job, st.nlink - 1);
    this.batch.push(job);
    this.batchBytes += st.size;
    if (this.batch.length >= BATCH_FILES || this.batchBytes >= BATCH_BYTES) this.flushBatch();
    return job;
  }

  private rememberLinks(key: string, job: Job, remaining: number): void {
    if (this.links.size >= (this.opts.maxLinkGroups ?? MAX_LINK_GROUPS)) this.links.delete(this.links.keys().next().value!);
    this.links.set(key, { job, remaining });
    this.stats.linkGroupsPeak = Math.max(this.stats.linkGroupsPeak, this.links.size);
  }

  private flushBatch(): void {
    if (this.batch.length === 0) return;
    const jobs = this.batch;
    const bytes = this.batchBytes;
    this.batch = [];
    this.batchBytes = 0;
    const run = async (): Promise<void> => {
      await this.budget.spend(0, bytes);
      let results: HashResult[];
      try {
        results = await this.pool.hash(jobs.map((j) => j.host), bytes);
      } catch (err) {
        results = jobs.map(() => ({ error: `hashing thread failed: ${(err as Error).message}`, code: 'READ_FAILED' as const }));
      }
      jobs.forEach((job, i) => this.finish(job, results[i]!));
    };
    const sent = run();
    for (const job of jobs) job.sent = sent;
  }

  private finish(job: Job, result: HashResult): void {
    const rec = job.links[0]!;
    if ('sha256' in result) {
      this.stats.hashed++;
      this.stats.bytesHashed += result.bytes;
      this.opts.onHashed?.(rec.path);
      const [dev, ino, size, mtimeMs, ctimeMs, mode, uid, gid] = result.stat;
      if (dev !== job.stat.dev || ino !== job.stat.ino) {
        // The name now holds another file: its digest is not the one the walk's record describes.
        job.unreadable = 'replaced between the walk and its hashing; its digest is not reported';
        this.warnings.push({ code: 'CHANGED_DURING_SCAN', path: rec.path, message: job.unreadable });
      } else {
        // Same inode: the bytes were read under this fstat (the thread checked it held for the
        // whole read), so the record takes its metadata from it. Its ctime also moves when
        // another process only links or unlinks the file (a hard-linked copy of the tree made
        // meanwhile): the content did not change, and dropping the digest would lose it.
        const st: FileStat = { dev, ino, size, mtimeMs, ctimeMs };
        // The xattrs were read between the walk's lstat and this fstat: with ctime the same at
        // both, no setxattr came between, and they hold for this stat; else they are not cached.
        const xattrs = job.xattrs !== undefined && ctimeMs === job.stat.ctimeMs ? job.xattrs : null;
        job.stat = st;
        for (const r of job.links) Object.assign(r, { mode: modeText(mode), uid, gid, size });
        job.sha256 = result.sha256;
        // The path inside the root is the tail of the host path the job already holds.
        if (this.opts.cache && ctimeMs < this.startedAt - this.racyMs) this.opts.cache.remember(job.host.subarray(this.rootBuf.length), st, result.sha256, xattrs);
      }
    } else {
      job.unreadable = result.error;
      this.warnings.push({ code: result.code, path: rec.path, message: result.error });
    }
    job.done = true;
    for (const r of job.links) applyResult(r, job);
    // A name still to come takes the result from the job: the records need not be held.
    job.links = [];
  }

  private host(inside: Buffer): Buffer {
    return this.rootBuf.length === 0 ? inside : Buffer.concat([this.rootBuf, inside]);
  }
}

function applyResult(rec: ObservedFile, job: Job): void {
  if (job.sha256 !== undefined) rec.sha256 = job.sha256;
  else if (job.unreadable !== undefined) rec.unreadable = job.unreadable;
}

/** Walks and hashes everything into memory. Fine for an image; a huge tree should stream `TreeWalker`. */
export async function fingerprint(root: Root, policy: Policy, opts: FingerprintOptions = {}): Promise<Fingerprint> {
  const walker = new TreeWalker(root, policy, opts);
  const files: ObservedFile[] = [];
  for await (const batch of walker.batches()) for (const f of batch) files.push(f);
  return { files, warnings: walker.warnings, bytesHashed: walker.stats.bytesHashed, stats: walker.stats };
}

/** The record of one path from its lstat; `inside` is the path's exact bytes, `text` its readable form. */
export function toRecord(inside: Buffer, text: string, st: WalkStat): ObservedFile {
  const record: ObservedFile = {
    path: text,
    type: fileType(st),
    mode: modeText(st.mode),
    uid: st.uid,
    gid: st.gid,
  };
  // Names that are not UTF-8 keep their exact bytes; `path` is then only for people to read.
  if (!isUtf8(inside)) record.rawPath = inside.toString('base64');
  if (record.type === 'file') record.size = st.size;
  return record;
}

/** The permission bits as text, made once per distinct mode: not two strings per path. */
const MODE_TEXTS: Array<string | undefined> = new Array<string | undefined>(0o10000);
function modeText(mode: number): string {
  const bits = mode & 0o7777;
  return (MODE_TEXTS[bits] ??= bits.toString(8).padStart(4, '0'));
}

function fileType(st: WalkStat): FileType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'char';
  return 'block';
}

/**
 * The walk's order: path components compared byte-wise, so `/a/b` sorts before `/a-b` (a
 * depth-first walk with sorted names visits them so). Equal to comparing the bytes with `/`
 * ranked below every other byte, which names can never contain.
 */
export function comparePathBytes(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (x === 0x2f) return -1;
    if (y === 0x2f) return 1;
    return x - y;
  }
  return a.length - b.length;
}

/** `comparePathBytes` for two records, on their strings when both are UTF-8 (no Buffer needed). */
export function compareRecordPaths(a: { path: string; rawPath?: string | undefined }, b: { path: string; rawPath?: string | undefined }): number {
  return comparePaths(a.path, a.rawPath, b.path, b.rawPath);
}

/** `compareRecordPaths` of two paths given as a record's `path` and `rawPath`. */
export function comparePaths(x: string, xRaw: string | undefined, y: string, yRaw: string | undefined): number {
  if (xRaw !== undefined || yRaw !== undefined) return comparePathBytes(rawBytes(x, xRaw), rawBytes(y, yRaw));
  // A warm scan's common case (the walked path is the manifest's next one): one native compare.
  if (x === y) return 0;
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const cx = x.charCodeAt(i);
    const cy = y.charCodeAt(i);
    if (cx === cy) continue;
    if (cx === 0x2f) return -1;
    if (cy === 0x2f) return 1;
    // Below the surrogates UTF-16 order is code point order is UTF-8 byte order; above, it is not.
    if (cx >= 0xd800 || cy >= 0xd800) return comparePathBytes(Buffer.from(x), Buffer.from(y));
    return cx - cy;
  }
  return x.length - y.length;
}

function rawBytes(path: string, rawPath: string | undefined): Buffer {
  return rawPath === undefined ? Buffer.from(path) : Buffer.from(rawPath, 'base64');
}

/** `/usr` and `/usr/local` both tracked: walk `/usr` once. In walk order. */
export function topLevelTracked(tracked: readonly string[]): string[] {
  const unique = [...new Set(tracked.map((t) => (t.length > 1 ? t.replace(/\/+$/, '') : t)))];
  unique.sort((a, b) => comparePathBytes(Buffer.from(a), Buffer.from(b)));
  return unique.filter((t, i) => !unique.slice(0, i).some((p) => isUnder(t, p)));
}
