// A walk thread (see walk-pool.ts): walks the paths of one job depth first, names byte-sorted,
// takes the lstat of each and compares it with the row its path has in `clean_entries` (its own
// read-only connection), and sends back in walk order only what the main thread needs: a known
// clean path as its bytes, any other path with its lstat, and the walk's warnings.
import { lstatSync, readdirSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { compileGlobsForChildren } from '../../shared/policy.js';
import type { ScanWarning } from '../../shared/report.js';
import { Database } from '../sqlite.js';
import { CLEAN_PAGE_SQL, cleanLookup, lstatTuple } from './clean-paths.js';
import type { CleanReaderSpec } from './clean-paths.js';
import { BUFFERED, CLEAN, CLOSED, EPOCH, HEAD, HUNGRY, ITEM_MAX, RECORD, WARNING, packPending, unpackPending, warningJson, writeStat } from './walk-codec.js';
import type { PendingPath } from './walk-codec.js';
import { errorCode, isPseudoFs, mountNotCrossed, pseudoFsSkipped, warn } from './walk-checks.js';

export interface WalkThreadData {
  /** Length of the root's own path: a host path less it is the path inside the root. */
  skip: number;
  /** The policy's ignored globs; a pool made before the manifest was read sends them later (`WalkPool.configure`). */
  ignored?: readonly string[];
  crossMounts: boolean;
  reader: CleanReaderSpec;
  shared: SharedArrayBuffer;
  /** BUFFERED's limit in bytes. */
  limit: number;
  chunkBytes: number;
  /** Chunks the main thread has read come back here, to be filled again. */
  recycle: MessagePort;
}

const data = workerData as WalkThreadData;
const shared = new Int32Array(data.shared);
let ignored = compileGlobsForChildren(data.ignored ?? []);
const NON_ASCII = /[^\x00-\x7f]/;
const tuple = Buffer.allocUnsafe(52);
/** At most this many jobs are made of what a thread gives away at once. */
const SPLIT_JOBS = 16;

/** The row look-up; a database this thread cannot open only costs the comparison of every path. */
const holds = ((): ((p: Buffer, st: Stats) => boolean) => {
  try {
    const db = new Database(data.reader.file, { readonly: true, fileMustExist: true });
    db.pragma('cache_size = -2048');
    const page = db.prepare(CLEAN_PAGE_SQL).pluck();
    const lookup = cleanLookup((from, size) => page.all(data.reader.root, from, size) as string[]);
    return (p, st) => lookup(p, lstatTuple(st, tuple));
  } catch {
    return () => false;
  }
})();

let chunk = freshChunk();
let at = 0;

/** A chunk the main thread gave back, else a new one. */
function freshChunk(): Buffer {
  const back = receiveMessageOnPort(data.recycle);
  return Buffer.from(back === undefined ? new ArrayBuffer(data.chunkBytes + ITEM_MAX) : (back.message as ArrayBuffer));
}

function send(job: number, done: boolean, split?: ArrayBuffer[]): void {
  // Past the limit only the job being read goes on: the others wait for the reader to catch up.
  while (Atomics.load(shared, HEAD) !== job && Atomics.load(shared, BUFFERED) > data.limit && Atomics.load(shared, CLOSED) === 0) {
    const epoch = Atomics.load(shared, EPOCH);
    if (Atomics.load(shared, HEAD) === job || Atomics.load(shared, BUFFERED) <= data.limit) break;
    Atomics.wait(shared, EPOCH, epoch, 200);
  }
  const buf = chunk.buffer as ArrayBuffer;
  Atomics.add(shared, BUFFERED, at);
  parentPort!.postMessage({ job, buf, length: at, ...(split ? { split } : {}), ...(done ? { done } : {}) }, split ? [buf, ...split] : [buf]);
  chunk = freshChunk();
  at = 0;
}

function putPath(tag: number, inside: Buffer): void {
  chunk[at] = tag;
  chunk.writeUInt16LE(inside.length, at + 1);
  at += 3 + inside.copy(chunk, at + 3);
}

function putWarning(w: ScanWarning): void {
  const json = warningJson(w).subarray(0, 8192);
  chunk[at] = WARNING;
  chunk.writeUInt32LE(json.length, at + 1);
  at += 5 + json.copy(chunk, at + 5);
}

/** Walks one job: the same walk as `TreeWalker.entries()` on the main thread, path for path. */
function walk(job: number, pending: PendingPath[]): void {
  const stack = pending;
  const skip = data.skip;
  while (stack.length > 0) {
    if (at >= data.chunkBytes) send(job, false);
    const item = stack.pop()!;
    let st: Stats | undefined;
    let topDev = item.topDev;
    if (Number.isNaN(topDev)) {
      // A tracked folder: one absent is simply not there; a pseudo filesystem is never walked.
      try {
        st = lstatSync(item.host);
      } catch (err) {
        if (errorCode(err) !== 'ENOENT') putWarning(warn(err, item.text));
        continue;
      }
      if (st.isDirectory() && isPseudoFs(item.host)) {
        putWarning(pseudoFsSkipped(item.text));
        continue;
      }
      topDev = st.dev;
    } else {
      st = lstatSync(item.host, { throwIfNoEntry: false });
      // undefined: vanished between readdir and lstat, so it is simply not there any more
      if (st === undefined) continue;
    }
    const inside = item.host.subarray(skip);
    // Symbolic links always come whole: the causes of findings follow them.
    const clean = !st.isSymbolicLink() && holds(inside, st);
    putPath(clean ? CLEAN : RECORD, inside);
    if (!clean) at = writeStat(chunk, at, st);
    if (!st.isDirectory()) continue;
    if (st.dev !== topDev) {
      if (!data.crossMounts) {
        putWarning(mountNotCrossed(item.text));
        continue;
      }
      if (isPseudoFs(item.host)) {
        putWarning(pseudoFsSkipped(item.text));
        continue;
      }
    }
    // Names as latin1 strings: one char per byte, so exact for any name, and far cheaper to make
    // than a Buffer each (a tenth of a walk thread's time); their code-unit order is byte order.
    let names: string[];
    try {
      names = readdirSync(item.host, 'latin1');
    } catch (err) {
      putWarning(warn(err, item.text));
      continue;
    }
    names.sort();
    const base = item.host.length;
    const sep = inside.length === 1 ? 0 : 1;
    // Push in reverse so the walk visits names in byte order.
    for (let i = names.length - 1; i >= 0; i--) {
      const name = names[i]!;
      const host = Buffer.allocUnsafe(base + sep + name.length);
      item.host.copy(host, 0);
      if (sep === 1) host[base] = 0x2f;
      host.write(name, base + sep, 'latin1');
      // An ASCII name reads the same in UTF-8: the folder's text and it, without a decode.
      const ascii = !NON_ASCII.test(name);
      const text = ascii ? (sep === 1 ? `${item.text}/${name}` : item.text + name) : host.toString('utf8', skip);
      // No folder given to walk is ignored: a child is asked about by its name.
      if (!ignored.child(ascii ? name : text.slice(text.lastIndexOf('/') + 1), text)) stack.push({ host, text, topDev });
    }
    // An idle thread and no job for it: give away the folders nearest the top of the tree that
    // are left (they lie at the bottom of the stack and come last in walk order), as up to
    // SPLIT_JOBS jobs in walk order. Small jobs taken in turn keep both threads near the reader:
    // a thread given half the tree ran past the buffer limit and waited there.
    if (stack.length >= 2 && Atomics.load(shared, HUNGRY) === 1 && Atomics.compareExchange(shared, HUNGRY, 1, 0) === 1) {
      const depth = slashes(stack[0]!.host);
      let level = 1;
      while (level < stack.length && slashes(stack[level]!.host) === depth) level++;
      const given = stack.splice(0, Math.min(level, stack.length - 1));
      const jobs: ArrayBuffer[] = [];
      const per = Math.ceil(given.length / SPLIT_JOBS);
      // The top of `given` comes first in walk order.
      for (let end = given.length; end > 0; end -= per) jobs.push(packPending(given.slice(Math.max(0, end - per), end)));
      send(job, false, jobs);
    }
  }
  send(job, true);
}

function slashes(p: Buffer): number {
  let n = 0;
  for (let i = p.indexOf(0x2f); i >= 0; i = p.indexOf(0x2f, i + 1)) n++;
  return n;
}

// The globs come before any job: messages arrive in the order they were sent.
parentPort!.on('message', (m: { job: number; pending: ArrayBuffer } | { ignored: readonly string[] }) => {
  if ('ignored' in m) ignored = compileGlobsForChildren(m.ignored);
  else walk(m.job, unpackPending(m.pending, data.skip));
});
parentPort!.postMessage({ ready: true });
