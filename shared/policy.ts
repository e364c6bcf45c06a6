// What a user should not have to set (DESIGN.md "Defaults"). Pure: no fs, usable in a browser too.
import { compileGlob } from './glob.js';

export const DEFAULT_TRACKED = ['/usr', '/etc', '/opt', '/boot', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/srv'];

export const DEFAULT_IGNORED = [
  '/proc',
  '/sys',
  '/dev',
  '/run',
  '/tmp',
  '/var/tmp',
  '/var/log',
  '/var/cache',
  '/var/lib/apt/lists',
  '/home',
  '/root',
  '/var/lib/quicksand', // the agent's own state
  // Byte-compiled caches are rebuilt by the interpreter at will; never drift on their own.
  '/**/__pycache__',
];

export const DEFAULT_MUTABLE = [
  '/etc/hostname',
  '/etc/hosts',
  '/etc/resolv.conf',
  '/etc/machine-id',
  '/etc/mtab',
  '/etc/adjtime',
  '/etc/ld.so.cache',
];

export interface Policy {
  tracked: string[];
  ignored: string[];
  mutable: string[];
}

export function defaultPolicy(): Policy {
  return { tracked: [...DEFAULT_TRACKED], ignored: [...DEFAULT_IGNORED], mutable: [...DEFAULT_MUTABLE] };
}

/**
 * Compiles absolute-path globs into one matcher. `*` and `?` stay inside a path segment, `**`
 * crosses segments, and a pattern that matches a folder matches everything below it, so
 * `/var/log` ignores the whole subtree.
 */
export function compileGlobs(patterns: readonly string[]): (path: string) => boolean {
  const matchers = patterns.map((glob) => compileGlob(glob.length > 1 ? glob.replace(/\/+$/, '') : glob, { path: true, folder: true }));
  if (matchers.length === 0) return () => false;
  return (path) => matchers.some((m) => m(path));
}

/** True when `path` is `dir` or lies below it. Both absolute, without trailing slash. */
export function isUnder(path: string, dir: string): boolean {
  if (dir === '/') return true;
  return path === dir || (path.startsWith(dir) && path.charCodeAt(dir.length) === 47 /* / */);
}
