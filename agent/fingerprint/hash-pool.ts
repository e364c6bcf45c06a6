import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { reapplyHeapFlags } from '../heap-flags.js';

/** The fstat a file's bytes were read under: the digest describes the file as it was then. */
export type ReadStat = [dev: number, ino: number, size: number, mtimeMs: number, ctimeMs: number, mode: number, uid: number, gid: number];

/** What hashing one regular file gave: its digest and the stat it was read under, or why not. */
export type HashResult =
  | { sha256: string; bytes: number; stat: ReadStat }
  | { error: string; code: 'UNREADABLE' | 'READ_FAILED' | 'CHANGED_DURING_SCAN' };

// The worker is plain CommonJS kept as a string: it runs the same under tsx, vitest and the
// compiled dist/ without a second build output to locate. It reads with synchronous calls on its
// own thread, so each file costs no promise or libuv round trip, and reads in fixed chunks, so a
// file of any size (sparse ones included) never sits whole in memory.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const os = require('node:os');
if (workerData.nice) { try { os.setPriority(0, workerData.nice); } catch {} }
const C = fs.constants;
// O_NONBLOCK: a regular file swapped for a FIFO after lstat must not block open().
const FLAGS = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK;
const buf = Buffer.allocUnsafe(workerData.chunk);
const READ_ATTEMPTS = 3;
const ONE_SHOT = typeof crypto.hash === 'function';
function describe(e) {
  switch (e && e.code) {
    case 'EACCES': case 'EPERM': return 'permission denied';
    case 'ELOOP': return 'replaced by a symbolic link during the scan';
    case 'ENOENT': return 'vanished during the scan';
    default: return (e && e.message) || String(e);
  }
}
function hashOne(p) {
  let fd;
  try { fd = fs.openSync(p, FLAGS); }
  catch (e) {
    if (e.code === 'ENOENT' || e.code === 'ELOOP') return { error: describe(e), code: 'CHANGED_DURING_SCAN' };
    return { error: describe(e), code: e.code === 'EACCES' || e.code === 'EPERM' ? 'UNREADABLE' : 'READ_FAILED' };
  }
  try {
    let before = fs.fstatSync(fd);
    if (!before.isFile()) return { error: 'replaced by a non-regular file during the scan', code: 'CHANGED_DURING_SCAN' };
    // A moved ctime alone is a change of metadata (a link made or removed, chmod, chown) or a
    // write whose mtime was put back: read again, and report a digest only for a read the
    // whole stat held over. A moved size or mtime is a writer at work: no second try.
    for (let attempt = 1; ; attempt++) {
      let pos = 0;
      let sha256;
      // Read up to the size fstat gave, no further: a small file costs one read, not two. A file
      // that grew meanwhile shows it in the second fstat below.
      if (before.size <= buf.length) {
        // Most files fit the buffer whole: one-shot crypto.hash (Node >= 20.12) makes no Hash object.
        while (pos < before.size) {
          const n = fs.readSync(fd, buf, pos, before.size - pos, pos);
          if (n === 0) break;
          pos += n;
        }
        const bytes = buf.subarray(0, pos);
        sha256 = ONE_SHOT ? crypto.hash('sha256', bytes) : crypto.createHash('sha256').update(bytes).digest('hex');
      } else {
        const h = crypto.createHash('sha256');
        while (pos < before.size) {
          const n = fs.readSync(fd, buf, 0, buf.length, pos);
          if (n === 0) break;
          h.update(n === buf.length ? buf : buf.subarray(0, n));
          pos += n;
        }
        sha256 = h.digest('hex');
      }
      const after = fs.fstatSync(fd);
      const written = after.mtimeMs !== before.mtimeMs || after.size !== before.size || pos !== after.size;
      if (!written && after.ctimeMs === before.ctimeMs)
        return { sha256, bytes: pos, stat: [after.dev, after.ino, after.size, after.mtimeMs, after.ctimeMs, after.mode, after.uid, after.gid] };
      if (written || attempt === READ_ATTEMPTS)
        return { error: 'written to while it was being hashed; its digest is not reported', code: 'CHANGED_DURING_SCAN' };
      before = after;
    }
  } catch (e) {
    return { error: describe(e), code: e.code === 'EACCES' || e.code === 'EPERM' ? 'UNREADABLE' : 'READ_FAILED' };
  } finally {
    fs.closeSync(fd);
  }
}
parentPort.on('message', (m) => {
  // Paths arrive as one NUL-separated buffer (no path holds a NUL): one transfer per batch.
  const all = Buffer.from(m.paths);
  const results = [];
  for (let start = 0; start < all.length; ) {
    let end = all.indexOf(0, start);
    if (end < 0) end = all.length;
    results.push(hashOne(all.subarray(start, end)));
    start = end + 1;
  }
  parentPort.postMessage({ id: m.id, results });
});
`;

export interface HashPoolOptions {
  /** Worker threads; default: the number of cores. */
  size?: number;
  /** CPU nice level for the workers (they also inherit the process's). */
  nice?: number;
  chunkBytes?: number;
}

interface Slot {
  worker: Worker;
  inFlight: number;
  /** Bytes of the batches in flight; Infinity while one of unknown size is. */
  bytes: number;
}

/**
 * A busy thread takes on batches while it holds less than this to hash (~35 ms of sha256, what a
 * thread's start-up costs) before another thread starts: a walk of small files, slower than one
 * thread's hashing, then mostly never pays a second thread (the 6k-path minbase), while a tree
 * of big files soon has them all.
 */
const ONE_THREAD_BYTES = 64 * 1024 * 1024;
const MAX_IN_FLIGHT = 16;

/**
 * A bounded pool of hashing threads, started lazily: a rescan that finds everything in the stat
 * cache starts no thread at all. Callers batch small files into one message so the per-message
 * cost is paid once per batch, not once per file.
 */
export class HashPool {
  private size: number;
  private readonly nice: number;
  private readonly chunk: number;
  private slots: Slot[] = [];
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (r: HashResult[]) => void; reject: (e: Error) => void; slot: Slot; bytes: number }>();
  private queue: Array<{ id: number; paths: ArrayBuffer; bytes: number }> = [];

  constructor(opts: HashPoolOptions = {}) {
    this.size = Math.max(1, opts.size ?? availableParallelism());
    this.nice = opts.nice ?? 0;
    this.chunk = opts.chunkBytes ?? 1024 * 1024;
  }

  /** Threads started so far (an ended one still counts): never more than the pool's size. */
  threadsStarted = 0;

  /** Sets the pool's size before it hashes (`prewarm` started one thread at most, which any size allows). */
  resize(size: number): void {
    this.size = Math.max(1, size);
  }

  /** Batches queued but not yet taken by a thread: the caller's back-pressure signal. */
  get backlog(): number {
    return this.queue.length;
  }

  /**
   * Starts the first thread now, when the caller knows it will hash: its start-up overlaps other
   * work. The others start only once it falls behind (see `pump`).
   */
  prewarm(): void {
    if (this.slots.length === 0) this.spawn();
  }

  /** Hashes the files at `paths`; `bytes`, their total size when known, lets one thread do while it keeps up. */
  hash(paths: Buffer[], bytes = Infinity): Promise<HashResult[]> {
    const id = this.nextId++;
    const joined = new Uint8Array(paths.reduce((n, p) => n + p.length + 1, 0) - 1);
    let at = 0;
    for (const p of paths) {
      joined.set(p, at);
      at += p.length;
      if (at < joined.length) joined[at++] = 0;
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ id, paths: joined.buffer, bytes });
      this.waiting.set(id, { resolve, reject, slot: undefined as unknown as Slot, bytes });
      this.pump();
    });
  }

  async close(): Promise<void> {
    const slots = this.slots;
    this.slots = [];
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const job = this.queue[0]!;
      const slot = this.slotFor(job.bytes);
      if (!slot) return;
      this.queue.shift();
      slot.inFlight++;
      slot.bytes += job.bytes;
      this.waiting.get(job.id)!.slot = slot;
      // Referenced only while it has work: an idle thread never keeps the process from exiting.
      slot.worker.ref();
      slot.worker.postMessage(job, [job.paths]);
    }
  }

  private slotFor(bytes: number): Slot | undefined {
    const idle = this.slots.find((s) => s.inFlight === 0);
    if (idle) return idle;
    const light = this.slots.find((s) => s.inFlight < MAX_IN_FLIGHT && s.bytes + bytes <= ONE_THREAD_BYTES);
    if (light) return light;
    if (this.slots.length < this.size) return this.spawn();
    // Two batches per thread: the next one is already there when the current one ends.
    return this.slots.find((s) => s.inFlight < 2);
  }

  private spawn(): Slot {
    this.threadsStarted++;
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { nice: this.nice, chunk: this.chunk } });
    worker.unref();
    worker.once('online', reapplyHeapFlags);
    const slot: Slot = { worker, inFlight: 0, bytes: 0 };
    worker.on('message', (m: { id: number; results: HashResult[] }) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      slot.inFlight--;
      // A batch of unknown size leaves the thread marked full until it has none in flight.
      if (slot.inFlight === 0) slot.bytes = 0;
      else if (w.bytes !== Infinity) slot.bytes -= w.bytes;
      if (slot.inFlight === 0) worker.unref();
      w.resolve(m.results);
      this.pump();
    });
    worker.on('error', (err) => {
      for (const [id, w] of this.waiting) {
        if (w.slot !== slot) continue;
        this.waiting.delete(id);
        w.reject(err);
      }
      this.slots = this.slots.filter((s) => s !== slot);
    });
    this.slots.push(slot);
    return slot;
  }
}

let early: HashPool | undefined;

/**
 * Boots the first hashing thread at once, for a command that will hash every file (`manifest`):
 * a thread takes ~35 ms of its own to start, which then overlaps the main thread loading the
 * agent's modules instead of following it.
 */
export function startHashingEarly(): void {
  early ??= new HashPool();
  early.prewarm();
}

/**
 * The pool started early (once, when its options are the defaults but for a smaller size: it has
 * started one thread, which any size allows), or a new one.
 */
export function hashPoolFor(opts: HashPoolOptions): HashPool {
  const pool = early;
  early = undefined;
  if (pool !== undefined && !opts.nice && opts.chunkBytes === undefined) {
    if (opts.size !== undefined) pool.resize(opts.size);
    return pool;
  }
  void pool?.close();
  return new HashPool(opts);
}
