import { lstatSync, readFileSync, readdirSync } from 'node:fs';
import type { Dirent } from 'node:fs';
import type { Ecosystem } from '../../shared/findings.js';
import type { ScanWarning } from '../../shared/report.js';
import { ABSENT_HOST_PATH, type Root } from '../root.js';
import type { ChangeSet } from './types.js';

// Package databases are many small files, mostly in the page cache: read synchronously, each
// costs one open, fstat, read and close on this thread. Through fs/promises each step was a
// round trip through libuv's pool (176 dpkg info files: 25-43 ms of CPU against 7 ms).

/**
 * Reads a text file; null when it is not there as a file (absent, a folder on the way missing,
 * or a folder where a file was expected: a damaged tree must not stop the collector).
 */
export async function readOptional(file: string): Promise<string | null> {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return null;
    throw err;
  }
}

/**
 * Reads a text file without ever throwing: `text` is null when it is absent (ENOENT), and
 * `error` says why a file that is there could not be read (EACCES, EISDIR, ENOTDIR, ...). A
 * damaged tree then costs the one package whose file it is, with a warning, not the database.
 */
export async function readChecked(file: string): Promise<{ text: string | null; error?: string }> {
  try {
    return { text: readFileSync(file, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || (code === 'ENOTDIR' && file.startsWith(ABSENT_HOST_PATH))) return { text: null };
    return { text: null, error: code ?? (err as Error).message };
  }
}

/** At most `max` of `messages`, the last one saying how many more there were: a garbage file must not flood a report. */
export function capMessages(messages: readonly string[], max = 10): string[] {
  if (messages.length <= max) return [...messages];
  return [...messages.slice(0, max - 1), `... and ${messages.length - max + 1} more problems in the same file`];
}

/**
 * Folder entries, or [] when the folder does not exist. Never follows the folder if it is a link
 * out of the root. A folder there that may not be read is [] too, and `onDenied` hears of it:
 * where the folder holds package records, that is a warning, not an absent ecosystem.
 */
export async function listDir(dir: string, onDenied?: () => void): Promise<Dirent[]> {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES') onDenied?.();
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') return [];
    throw err;
  }
}

/** The warning for a folder of package records that may not be read. */
export function deniedFolder(code: string, inside: string, what: string): ScanWarning {
  return { code, path: inside, message: `cannot list the folder (EACCES): ${what} not checked` };
}

/**
 * The entries of a folder inside the root ([] when absent); through the root's own layers when
 * it has them (a container's view), else the folder on this machine. `onDenied` as for listDir.
 */
export async function listInside(root: Root, inside: string, onDenied?: () => void): Promise<Dirent[]> {
  return root.list ? root.list(inside, onDenied) : listDir(root.hostPath(inside), onDenied);
}

/** Modification time of a path inside the root, without following a final link; null if absent. */
export async function mtimeOf(root: Root, inside: string): Promise<Date | null> {
  try {
    return lstatSync(root.hostPath(inside)).mtime;
  } catch {
    return null;
  }
}

/**
 * Every path below `inside` (files, links and folders, not following links), as absolute
 * paths inside the root. Bounded so a hostile tree cannot make a collector walk forever.
 */
export async function walkInside(root: Root, inside: string, limit = 200_000): Promise<string[]> {
  const out: string[] = [];
  const stack = [inside];
  while (stack.length > 0 && out.length < limit) {
    const dir = stack.pop()!;
    for (const e of await listInside(root, dir)) {
      const p = `${dir}/${e.name}`;
      out.push(p);
      if (e.isDirectory()) stack.push(p);
    }
  }
  return out;
}

/** `Q1…`/`sha256=…` digests are base64 (standard or URL-safe, padded or not); the agent compares hex. */
export function base64ToHex(b64: string): string | null {
  const std = b64.replace(/-/g, '+').replace(/_/g, '/');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(std)) return null;
  const hex = Buffer.from(std, 'base64').toString('hex');
  return hex === '' ? null : hex;
}

/** PEP 503 normalised name: lowercase, runs of `-`, `_`, `.` become one `-`. */
export function normalizePythonName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

/** `ecosystem:name`, the key of Collected.records and of package findings. */
export function packageId(p: { ecosystem: string; name: string }): string {
  return `${p.ecosystem}:${p.name}`;
}

/**
 * Groups package installs that happened close together into one change set: one `pip install`
 * writes all its dist-infos within seconds. `gapMs` is the largest pause inside one run.
 */
export function clusterByTime(
  items: ReadonlyArray<{ ecosystem: Ecosystem; name: string; version: string; time: Date; tool: string; group?: string }>,
  gapMs: number,
): ChangeSet[] {
  const sorted = [...items].filter((i) => !Number.isNaN(i.time.getTime())).sort((a, b) => a.time.getTime() - b.time.getTime());
  const sets: ChangeSet[] = [];
  let last: { time: number; key: string } | null = null;
  for (const item of sorted) {
    const key = `${item.tool}\0${item.group ?? ''}`;
    const t = item.time.getTime();
    const current = sets.at(-1);
    if (current && last && last.key === key && t - last.time <= gapMs) {
      current.events.push({ ecosystem: item.ecosystem, name: item.name, action: 'install', after: item.version });
      current.end = isoSeconds(item.time);
    } else {
      const start = isoSeconds(item.time);
      sets.push({ id: `${item.ecosystem}:${start}${item.group ? `:${item.group}` : ''}`, tool: item.tool, start, end: start, events: [{ ecosystem: item.ecosystem, name: item.name, action: 'install', after: item.version }] });
    }
    last = { time: t, key };
  }
  return sets;
}

/** `2026-11-29T22:40:03Z`: the precision package managers record. */
export function isoSeconds(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}
