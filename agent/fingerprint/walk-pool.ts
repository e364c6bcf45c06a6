import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { reapplyHeapFlags } from '../heap-flags.js';
import type { CleanReaderSpec } from './clean-paths.js';
import { BUFFERED, CLOSED, EPOCH, HEAD, HUNGRY, SHARED_SLOTS } from './walk-codec.js';
import type { WalkThreadData } from './walk-thread.js';

export interface WalkPoolOptions {
  threads: number;
  /** Length of the root's own path in every host path. */
  skip: number;
  /** Undefined: given later with `configure`, before `start`. */
  ignored?: readonly string[];
  crossMounts: boolean;
  reader: CleanReaderSpec;
}

/** What the threads may have sent ahead of the reader: bounds memory on any tree. */
const BUFFERED_LIMIT = 8 * 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;
/**
 * A thread's young generation: by default a worker's may grow to tens of MB, and a walk makes
 * short-lived garbage (an lstat's Stats and dates, a name's buffers) at a rate that fills it.
 */
const THREAD_LIMITS = { maxYoungGenerationSizeMb: 6 };

/** Paths still to walk, and what a thread found in them; jobs are read in the order of their list. */
interface Job {
  id: number;
  /** `packPending` bytes until a thread takes the job. */
  pending: ArrayBuffer | undefined;
  chunks: Array<{ chunk: Buffer; from: Slot }>;
  done: boolean;
  /** The job that comes after this one in walk order. */
  next: Job | undefined;
}

interface Slot {
  worker: Worker;
  /** Where read chunks go back to the thread that filled them (`recycle`). */
  recycle: MessagePort;
  ready: boolean;
  job: Job | undefined;
}

/**
 * Walk threads (walk-thread.ts) and the order their findings are read in. A job is a stack of
 * paths still to walk; the first is what the main thread had left when the threads came up. A
 * thread that sees another idle gives away the bottom of its stack as new jobs, placed right
 * after its own in the list, so the jobs' chunks read in list order are the walk's exact order.
 * Threads take the earliest job waiting; only the job being read may run past BUFFERED_LIMIT,
 * so memory stays bounded and the job being read is never stuck behind another.
 */
export class WalkPool {
  private readonly shared = new Int32Array(new SharedArrayBuffer(SHARED_SLOTS * 4));
  private readonly slots: Slot[] = [];
  private readonly jobs = new Map<number, Job>();
  private head: Job | undefined;
  private nextId = 1;
  private wake: (() => void) | undefined;
  private failure: Error | undefined;

  constructor(private readonly made: WalkPoolOptions) {
    const opts = made;
    const workerData: Omit<WalkThreadData, 'recycle'> = { skip: opts.skip, ...(opts.ignored ? { ignored: opts.ignored } : {}), crossMounts: opts.crossMounts, reader: opts.reader, shared: this.shared.buffer as SharedArrayBuffer, limit: BUFFERED_LIMIT, chunkBytes: CHUNK_BYTES };
    Atomics.store(this.shared, HEAD, -1);
    for (let i = 0; i < opts.threads; i++) {
      const { port1, port2 } = new MessageChannel();
      const slot: Slot = { worker: spawn({ ...workerData, recycle: port2 }, [port2]), recycle: port1, ready: false, job: undefined };
      slot.worker.once('online', reapplyHeapFlags);
      slot.worker.on('message', (m: ThreadMessage) => this.receive(slot, m));
      slot.worker.on('error', (err) => this.fail(err));
      slot.worker.on('exit', (code) => this.failure === undefined && !this.closed && this.fail(new Error(`walk thread exited (${code})`)));
      this.slots.push(slot);
    }
  }

  private closed = false;
  /** Jobs the threads walked: the first, and one for every half a thread gave away. */
  jobsWalked = 0;

  /** Threads this pool started. */
  get threads(): number {
    return this.slots.length;
  }

  /** True once every thread has loaded and opened its database: the main thread may hand over. */
  get ready(): boolean {
    return this.slots.every((s) => s.ready);
  }

  /** Settles when `ready` turns true, or a thread failed. */
  get whenReady(): Promise<void> {
    return new Promise<void>((resolve) => {
      const check = (): void => (this.ready || this.failure !== undefined ? resolve() : void setTimeout(check, 5));
      check();
    });
  }

  /** The walk's ignored globs, for a pool made without them (made before the manifest was read). */
  configure(ignored: readonly string[]): void {
    for (const slot of this.slots) slot.worker.postMessage({ ignored });
  }

  /** True when this pool walks for `reader` with `skip` and `crossMounts`: a pool made ahead is only taken by the walk it was made for. */
  fits(opts: Omit<WalkPoolOptions, 'ignored'>): boolean {
    const r = this.made.reader;
    return this.slots.length === opts.threads && this.made.skip === opts.skip && this.made.crossMounts === opts.crossMounts && r.file === opts.reader.file && r.root === opts.reader.root;
  }

  /** Gives the threads the rest of the walk (`packPending`, stack order). */
  start(pending: ArrayBuffer): void {
    this.head = this.add(pending);
    Atomics.store(this.shared, HEAD, this.head.id);
    this.schedule();
  }

  /** The next chunk in walk order; undefined when the walk is done. */
  async next(): Promise<Buffer | undefined> {
    for (;;) {
      if (this.failure) throw this.failure;
      const job = this.head;
      if (job === undefined) return undefined;
      const next = job.chunks.shift();
      if (next !== undefined) {
        Atomics.sub(this.shared, BUFFERED, next.chunk.length);
        this.notify();
        this.lastFrom = next.from;
        return next.chunk;
      }
      if (job.done) {
        this.jobs.delete(job.id);
        this.head = job.next;
        Atomics.store(this.shared, HEAD, this.head?.id ?? -1);
        this.notify();
        continue;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /**
   * Gives the chunk `next` gave last back to its thread, once read (it is unusable after):
   * chunks left to the garbage collector piled up as tens of MB of dead buffers in the threads'
   * malloc arenas before a full collection freed them.
   */
  recycle(chunk: Buffer): void {
    const buf = chunk.buffer as ArrayBuffer;
    this.lastFrom?.recycle.postMessage(buf, [buf]);
  }

  private lastFrom: Slot | undefined;

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.shared, CLOSED, 1);
    this.notify();
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    for (const s of this.slots) s.recycle.close();
  }

  private add(pending: ArrayBuffer): Job {
    const job: Job = { id: this.nextId++, pending, chunks: [], done: false, next: undefined };
    this.jobs.set(job.id, job);
    return job;
  }

  private receive(slot: Slot, m: ThreadMessage): void {
    if ('ready' in m) slot.ready = true;
    else {
      const job = this.jobs.get(m.job)!;
      if (m.length > 0) job.chunks.push({ chunk: Buffer.from(m.buf, 0, m.length), from: slot });
      if (m.split !== undefined) {
        // What this job gave away, in walk order: walked after everything the job still holds.
        let after = job;
        for (const pending of m.split) {
          const given = this.add(pending);
          given.next = after.next;
          after.next = given;
          after = given;
        }
      }
      if (m.done) {
        job.done = true;
        slot.job = undefined;
      }
    }
    this.schedule();
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Gives every idle thread the earliest job waiting; says HUNGRY when a thread stays idle. */
  private schedule(): void {
    let idle = false;
    for (const slot of this.slots) {
      if (!slot.ready || slot.job !== undefined) continue;
      let job = this.head;
      while (job !== undefined && job.pending === undefined) job = job.next;
      if (job === undefined) {
        idle = true;
        continue;
      }
      slot.job = job;
      this.jobsWalked++;
      const pending = job.pending!;
      job.pending = undefined;
      slot.worker.postMessage({ job: job.id, pending }, [pending]);
    }
    Atomics.store(this.shared, HUNGRY, idle && this.head !== undefined ? 1 : 0);
  }

  private notify(): void {
    Atomics.add(this.shared, EPOCH, 1);
    Atomics.notify(this.shared, EPOCH);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

type ThreadMessage = { ready: true } | { job: number; buf: ArrayBuffer; length: number; split?: ArrayBuffer[]; done?: true };

function spawn(workerData: WalkThreadData, transferList: MessagePort[]): Worker {
  const self = new URL(import.meta.url);
  // From the sources (tests, tsx) the thread is TypeScript too: it registers tsx's loader first,
  // since `--import` cannot be given to a worker. The built agent loads plain JS.
  const fromSource = self.pathname.endsWith('.ts');
  const entry = new URL(`./walk-thread.${fromSource ? 'ts' : 'js'}`, self);
  return fromSource
    ? new Worker(
        `import(${JSON.stringify(pathToFileURL(createRequire(self).resolve('tsx/esm/api')).href)})` +
          `.then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`,
        { eval: true, workerData, transferList, resourceLimits: THREAD_LIMITS },
      )
    : new Worker(entry, { workerData, transferList, resourceLimits: THREAD_LIMITS });
}
