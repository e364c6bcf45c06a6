// What the walk threads (walk-thread.ts) and the walk on the main thread (walk-pool.ts) pass
// each other, as bytes: a job is the paths still to walk, a chunk is what the walk found, in
// walk order. One transferable buffer per message, not an object per path. Pure.
import { constants } from 'node:fs';
import type { Stats } from 'node:fs';
import type { ScanWarning } from '../../shared/report.js';

/** What the walk needs of an lstat; `Stats` has it all, and so does `PackedStat`. */
export type WalkStat = Pick<Stats, 'dev' | 'ino' | 'mode' | 'nlink' | 'uid' | 'gid' | 'size' | 'mtimeMs' | 'ctimeMs' | 'isFile' | 'isDirectory' | 'isSymbolicLink' | 'isFIFO' | 'isSocket' | 'isCharacterDevice'>;

/**
 * Walk threads start for a tree whose clean paths hold this many rows (a large tree walked
 * before), else once this many paths were walked here: below it a thread's start-up (~40 ms,
 * its modules and its database) costs more than it saves.
 */
export const THREADS_AFTER = 10_000;

/** A path known clean: u16 length, its bytes inside the root. */
export const CLEAN = 1;
/** A path the main thread makes a record of: u16 length, its bytes, then STAT_FIELDS doubles. */
export const RECORD = 2;
/** A warning of the walk: u32 length, its JSON. */
export const WARNING = 3;
const STAT_FIELDS = 9;
export const STAT_BYTES = STAT_FIELDS * 8;
/** Room for the largest item (a path is at most PATH_MAX, 4096 bytes): a chunk is sent before it could overflow. */
export const ITEM_MAX = 1 + 2 + 4096 + STAT_BYTES + 8192;

// Shared counters (an Int32Array over a SharedArrayBuffer) between the main thread and the walk threads.
/** Bytes sent by the threads and not yet read by the main thread: past the limit, only the job being read goes on. */
export const BUFFERED = 0;
/** 1 while a thread is idle and no job waits for one: a thread then gives away half of what it still has to walk. */
export const HUNGRY = 1;
/** The id of the job the main thread is reading. */
export const HEAD = 2;
/** Moved (and notified) whenever BUFFERED falls or HEAD moves: what a waiting thread waits on. */
export const EPOCH = 3;
/** 1 once the walk is closed: a waiting thread stops waiting. */
export const CLOSED = 4;
export const SHARED_SLOTS = 5;

/** An lstat as a walk thread took it, read back from a chunk. */
export class PackedStat implements WalkStat {
  readonly dev: number;
  readonly ino: number;
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  constructor(buf: Buffer, at: number) {
    this.dev = buf.readDoubleLE(at);
    this.ino = buf.readDoubleLE(at + 8);
    this.mode = buf.readDoubleLE(at + 16);
    this.nlink = buf.readDoubleLE(at + 24);
    this.uid = buf.readDoubleLE(at + 32);
    this.gid = buf.readDoubleLE(at + 40);
    this.size = buf.readDoubleLE(at + 48);
    this.mtimeMs = buf.readDoubleLE(at + 56);
    this.ctimeMs = buf.readDoubleLE(at + 64);
  }
  isFile(): boolean {
    return this.is(constants.S_IFREG);
  }
  isDirectory(): boolean {
    return this.is(constants.S_IFDIR);
  }
  isSymbolicLink(): boolean {
    return this.is(constants.S_IFLNK);
  }
  isFIFO(): boolean {
    return this.is(constants.S_IFIFO);
  }
  isSocket(): boolean {
    return this.is(constants.S_IFSOCK);
  }
  isCharacterDevice(): boolean {
    return this.is(constants.S_IFCHR);
  }
  private is(type: number): boolean {
    return (this.mode & constants.S_IFMT) === type;
  }
}

/** Writes `st` as a RECORD's doubles at `at`; returns the offset after them. */
export function writeStat(buf: Buffer, at: number, st: WalkStat): number {
  buf.writeDoubleLE(st.dev, at);
  buf.writeDoubleLE(st.ino, at + 8);
  buf.writeDoubleLE(st.mode, at + 16);
  buf.writeDoubleLE(st.nlink, at + 24);
  buf.writeDoubleLE(st.uid, at + 32);
  buf.writeDoubleLE(st.gid, at + 40);
  buf.writeDoubleLE(st.size, at + 48);
  buf.writeDoubleLE(st.mtimeMs, at + 56);
  buf.writeDoubleLE(st.ctimeMs, at + 64);
  return at + STAT_BYTES;
}

/** One path still to walk: `topDev` is the device of its tracked folder, NaN when it is a tracked folder itself. */
export interface PendingPath {
  host: Buffer;
  text: string;
  topDev: number;
}

/** Paths still to walk, in stack order (the last is walked first): f64 topDev, u16 length, host path bytes each. */
export function packPending(items: readonly PendingPath[]): ArrayBuffer {
  const out = Buffer.from(new ArrayBuffer(items.reduce((n, p) => n + 10 + p.host.length, 0)));
  let at = 0;
  for (const p of items) {
    out.writeDoubleLE(p.topDev, at);
    out.writeUInt16LE(p.host.length, at + 8);
    at += 10 + p.host.copy(out, at + 10);
  }
  return out.buffer as ArrayBuffer;
}

/** `packPending` read back; `skip` is the length of the root's own path in each host path. */
export function unpackPending(data: ArrayBuffer, skip: number): PendingPath[] {
  const buf = Buffer.from(data);
  const out: PendingPath[] = [];
  for (let at = 0; at < buf.length; ) {
    const topDev = buf.readDoubleLE(at);
    const length = buf.readUInt16LE(at + 8);
    const host = Buffer.from(buf.subarray(at + 10, at + 10 + length));
    out.push({ host, text: host.toString('utf8', skip), topDev });
    at += 10 + length;
  }
  return out;
}

/** A WARNING item's text. */
export function warningJson(w: ScanWarning): Buffer {
  return Buffer.from(JSON.stringify(w));
}
