import { createHash } from 'node:crypto';
import { constants as C } from 'node:fs';
import type { BigIntStats, Stats } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { isUtf8 } from 'node:buffer';
import type { FileRecord, FileType } from '../shared/manifest.js';
import type { ScanWarning } from '../shared/report.js';
import { compileGlobs, isUnder } from '../shared/policy.js';
import type { Policy } from '../shared/policy.js';
import type { Root } from './root.js';

/** A file record as observed, plus why its content could not be read, when it could not. */
export interface ObservedFile extends FileRecord {
  unreadable?: string;
}

export interface Fingerprint {
  files: ObservedFile[];
  warnings: ScanWarning[];
  bytesHashed: number;
}

export interface FingerprintOptions {
  /** Files hashed at once; the reads go through libuv's thread pool. */
  concurrency?: number;
  onProgress?: (filesSeen: number, bytesHashed: number) => void;
}

const CHUNK = 256 * 1024;
// O_NONBLOCK: if a regular file was swapped for a FIFO after lstat, open must not wait for a writer.
const OPEN_FLAGS = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK;

/**
 * Walks the tracked paths of `policy` inside `root` and fingerprints every entry: type, mode,
 * owner, size, link target and the sha256 of regular files. Never follows a link, never opens
 * a FIFO, socket or device, never crosses into another filesystem below a tracked path.
 */
export async function fingerprint(root: Root, policy: Policy, opts: FingerprintOptions = {}): Promise<Fingerprint> {
  const ignored = compileGlobs(policy.ignored);
  const files: ObservedFile[] = [];
  const warnings: ScanWarning[] = [];
  // Hard links of one regular file share a group and are hashed once.
  const toHash: ObservedFile[][] = [];
  const inodes = new Map<string, ObservedFile[]>(); // dev:ino → its hard links

  const tops = topLevelTracked(policy.tracked);
  for (const top of tops) {
    if (ignored(top)) continue;
    let st: Stats;
    try {
      st = await lstat(root.hostPath(top));
    } catch (err) {
      if (code(err) !== 'ENOENT') warnings.push(warn(err, top));
      continue;
    }
    const topDev = st.dev;
    // Depth-first with an explicit stack: deep trees cannot overflow the call stack.
    const stack: Array<{ inside: Buffer; st: Stats }> = [{ inside: Buffer.from(top), st }];
    while (stack.length > 0) {
      const { inside, st: est } = stack.pop()!;
      const record = toRecord(inside, est);
      if (record.type === 'symlink') {
        try {
          const target = (await readlink(hostBuf(root, inside), { encoding: 'buffer' })) as Buffer;
          record.target = target.toString('utf8');
        } catch (err) {
          warnings.push(warn(err, record.path));
        }
      }
      files.push(record);
      if (record.type === 'file') {
        const key = `${est.dev}:${est.ino}`;
        const same = inodes.get(key);
        if (same) same.push(record);
        else {
          const group = [record];
          inodes.set(key, group);
          toHash.push(group);
        }
        opts.onProgress?.(files.length, 0);
        continue;
      }
      if (record.type !== 'dir') continue;
      if (est.dev !== topDev) {
        warnings.push({ code: 'MOUNT_NOT_CROSSED', path: record.path, message: 'another filesystem is mounted here; its contents were not walked' });
        continue;
      }
      let names: Buffer[];
      try {
        names = (await readdir(hostBuf(root, inside), { encoding: 'buffer' })) as Buffer[];
      } catch (err) {
        warnings.push(warn(err, record.path));
        continue;
      }
      const children: Array<{ inside: Buffer; st: Stats }> = [];
      for (const name of names) {
        const child = inside.length === 1 ? Buffer.concat([inside, name]) : Buffer.concat([inside, SLASH, name]);
        if (ignored(child.toString('utf8'))) continue;
        try {
          children.push({ inside: child, st: await lstat(hostBuf(root, child)) });
        } catch (err) {
          // vanished between readdir and lstat: it is simply not there any more
          if (code(err) !== 'ENOENT') warnings.push(warn(err, displayPath(child)));
        }
      }
      // Push in reverse so the walk visits names in sorted order.
      children.sort((a, b) => Buffer.compare(b.inside, a.inside));
      stack.push(...children);
    }
  }

  let bytesHashed = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    const buf = Buffer.allocUnsafe(CHUNK);
    while (next < toHash.length) {
      const links = toHash[next++]!;
      const record = links[0]!;
      const rawInside = record.rawPath === undefined ? Buffer.from(record.path) : Buffer.from(record.rawPath, 'base64');
      const result = await hashFile(hostBuf(root, rawInside), buf);
      if ('sha256' in result) {
        bytesHashed += result.bytes;
        for (const r of links) r.sha256 = result.sha256;
      } else {
        for (const r of links) r.unreadable = result.error;
        warnings.push({ code: result.code, path: record.path, message: result.error });
      }
      opts.onProgress?.(files.length, bytesHashed);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 8) }, worker));
  return { files, warnings, bytesHashed };
}

type HashResult = { sha256: string; bytes: number } | { error: string; code: string };

async function hashFile(file: Buffer, buf: Buffer): Promise<HashResult> {
  let fh;
  try {
    fh = await open(file, OPEN_FLAGS);
  } catch (err) {
    return { error: describe(err), code: code(err) === 'EACCES' ? 'UNREADABLE' : 'READ_FAILED' };
  }
  try {
    const before = (await fh.stat({ bigint: true })) as BigIntStats;
    if (!before.isFile()) return { error: 'replaced by a non-regular file during the scan', code: 'CHANGED_DURING_SCAN' };
    const hash = createHash('sha256');
    let bytes = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, bytes);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      bytes += bytesRead;
    }
    const after = (await fh.stat({ bigint: true })) as BigIntStats;
    if (after.mtimeNs !== before.mtimeNs || after.size !== before.size || after.ctimeNs !== before.ctimeNs) {
      return { error: 'written to while it was being hashed; its digest is not reported', code: 'CHANGED_DURING_SCAN' };
    }
    return { sha256: hash.digest('hex'), bytes };
  } catch (err) {
    return { error: describe(err), code: 'READ_FAILED' };
  } finally {
    await fh.close();
  }
}

const SLASH = Buffer.from('/');

function hostBuf(root: Root, inside: Buffer): Buffer {
  return root.dir === '' ? inside : Buffer.concat([Buffer.from(root.dir), inside]);
}

function displayPath(inside: Buffer): string {
  return inside.toString('utf8');
}

function toRecord(inside: Buffer, st: Stats): ObservedFile {
  const record: ObservedFile = {
    path: inside.toString('utf8'),
    type: fileType(st),
    mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
    uid: st.uid,
    gid: st.gid,
  };
  // Names that are not UTF-8 keep their exact bytes; `path` is then only for people to read.
  if (!isUtf8(inside)) record.rawPath = inside.toString('base64');
  if (record.type === 'file') record.size = st.size;
  return record;
}

function fileType(st: Stats): FileType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'char';
  return 'block';
}

/** `/usr` and `/usr/local` both tracked: walk `/usr` once. */
export function topLevelTracked(tracked: readonly string[]): string[] {
  const sorted = [...new Set(tracked.map((t) => (t.length > 1 ? t.replace(/\/+$/, '') : t)))].sort();
  return sorted.filter((t, i) => !sorted.slice(0, i).some((p) => isUnder(t, p)));
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function describe(err: unknown): string {
  switch (code(err)) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ELOOP':
      return 'replaced by a symbolic link during the scan';
    case 'ENOENT':
      return 'vanished during the scan';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

function warn(err: unknown, path: string): ScanWarning {
  return { code: code(err) === 'EACCES' ? 'UNREADABLE' : 'READ_FAILED', path, message: describe(err) };
}
