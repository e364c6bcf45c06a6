// Whether a package manager is in the middle of a transaction on a root: its lock file is held
// (read from /proc/locks, never by taking the lock: that would block the package manager), or a
// pip process runs inside the root. While one is, files are written that its database does not
// name yet: an event report then would page about changes that are no drift a moment later.
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';

/** Lock files (inside the root) a package manager holds for the whole of a transaction. */
export const PACKAGE_LOCK_FILES = [
  '/var/lib/dpkg/lock-frontend', // apt, and dpkg itself
  '/var/lib/dpkg/lock',
  '/var/lib/rpm/.rpm.lock', // rpm, dnf, zypper
  '/usr/lib/sysimage/rpm/.rpm.lock',
  '/lib/apk/db/lock',
];

export interface HeldLock {
  pid: number;
  /** `major:minor:inode` as /proc/locks writes it (major and minor in hex). */
  file: string;
}

/** The locks in a /proc/locks text (waiters, `->` lines, left out). Pure. */
export function parseProcLocks(text: string): HeldLock[] {
  const out: HeldLock[] = [];
  for (const line of text.split('\n')) {
    const m = /^\d+:\s+(?!->)\S+\s+\S+\s+\S+\s+(-?\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
    if (m) out.push({ pid: Number(m[1]), file: `${Number.parseInt(m[2]!, 16)}:${Number.parseInt(m[3]!, 16)}:${m[4]}` });
  }
  return out;
}

/** A file's identity as /proc/locks names it, from its stat's dev and inode (glibc's encoding). Pure. */
export function lockIdentity(dev: bigint, ino: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}:${ino}`;
}

/** True for the argv of a pip run (`pip install`, `pip3`, `python3 -m pip`). Pure. */
export function isPipCommand(argv: readonly string[]): boolean {
  const base = (s: string | undefined): string => path.posix.basename(s ?? '');
  if (/^pip[0-9.]*$/.test(base(argv[0]))) return true;
  if (/^python[0-9.]*$/.test(base(argv[0])) && /^pip[0-9.]*$/.test(base(argv[1]))) return true; // #!/usr/bin/python3 /usr/bin/pip
  const m = argv.indexOf('-m');
  return /^python[0-9.]*$/.test(base(argv[0])) && m > 0 && argv[m + 1] === 'pip';
}

/**
 * What package transaction runs on `rootDir` now (`dpkg lock held by pid 123`), or null.
 * Anything unreadable counts as no transaction: the hold is a refinement, never a blind spot.
 */
export async function runningTransaction(rootDir: string, lockFiles: readonly string[] = PACKAGE_LOCK_FILES): Promise<string | null> {
  const wanted = new Map<string, string>();
  await Promise.all(
    lockFiles.map(async (f) => {
      const s = await stat(path.join(rootDir, f), { bigint: true }).catch(() => null);
      if (s !== null) wanted.set(lockIdentity(s.dev, s.ino), f);
    }),
  );
  if (wanted.size > 0) {
    const locks = parseProcLocks(await readFile('/proc/locks', 'utf8').catch(() => ''));
    for (const l of locks) {
      const f = wanted.get(l.file);
      if (f !== undefined) return `${f} held by pid ${l.pid}`;
    }
  }
  return pipInside(rootDir);
}

async function pipInside(rootDir: string): Promise<string | null> {
  const root = path.resolve(rootDir);
  for (const pid of (await readdir('/proc').catch(() => [] as string[])).filter((n) => /^\d+$/.test(n))) {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').filter((a) => a !== '');
    if (!isPipCommand(argv)) continue;
    const itsRoot = await readlink(`/proc/${pid}/root`).catch(() => null);
    if (itsRoot !== null && path.resolve(itsRoot) === root) return `pip running as pid ${pid}`;
  }
  return null;
}
