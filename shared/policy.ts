// What a user should not have to set (DESIGN.md "Defaults"). Pure: no fs, usable in a browser too.
import type { TechniqueId } from './attack.js';
import type { Severity } from './findings.js';
import { compileGlob, literalLastSegment } from './glob.js';
import type { ConfigTextPolicy } from './config-text.js';

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

/**
 * A place intruders persist or escalate in: a change there that no package operation explains is
 * raised to at least `severity` and named with the ATT&CK technique it indicates. `added`: only
 * new paths count (a new shared library in a library folder).
 */
export interface SensitiveRule {
  path: string;
  technique: TechniqueId;
  severity: Severity;
  added?: boolean;
}

// First match wins: the specific places before the general ones.
export const DEFAULT_SENSITIVE: readonly SensitiveRule[] = [
  { path: '/etc/ld.so.preload', technique: 'T1574.006', severity: 'critical' },
  { path: '/etc/ld.so.conf', technique: 'T1574.006', severity: 'high' },
  { path: '/etc/ld.so.conf.d', technique: 'T1574.006', severity: 'high' },
  { path: '/etc/sudoers', technique: 'T1548.003', severity: 'critical' },
  { path: '/etc/sudoers.d', technique: 'T1548.003', severity: 'critical' },
  { path: '/etc/pam.d', technique: 'T1556.003', severity: 'critical' },
  { path: '/usr/lib/*/security', technique: 'T1556.003', severity: 'critical' },
  { path: '/lib/*/security', technique: 'T1556.003', severity: 'critical' },
  { path: '/etc/security', technique: 'T1556.003', severity: 'high' },
  { path: '/**/authorized_keys', technique: 'T1098.004', severity: 'critical' },
  { path: '/**/authorized_keys2', technique: 'T1098.004', severity: 'critical' },
  { path: '/etc/ssh/sshd_config', technique: 'T1556', severity: 'high' },
  { path: '/etc/ssh/sshd_config.d', technique: 'T1556', severity: 'high' },
  { path: '/etc/passwd', technique: 'T1136.001', severity: 'high' },
  { path: '/etc/shadow', technique: 'T1136.001', severity: 'high' },
  { path: '/etc/group', technique: 'T1136.001', severity: 'high' },
  { path: '/etc/gshadow', technique: 'T1136.001', severity: 'high' },
  { path: '/etc/cron*', technique: 'T1053.003', severity: 'high' },
  { path: '/etc/anacrontab', technique: 'T1053.003', severity: 'high' },
  { path: '/var/spool/cron', technique: 'T1053.003', severity: 'high' },
  { path: '/etc/systemd/system', technique: 'T1543.002', severity: 'high' },
  { path: '/etc/systemd/user', technique: 'T1543.002', severity: 'high' },
  { path: '/usr/lib/systemd/system', technique: 'T1543.002', severity: 'high' },
  { path: '/usr/lib/systemd/user', technique: 'T1543.002', severity: 'high' },
  { path: '/lib/systemd/system', technique: 'T1543.002', severity: 'high' },
  { path: '/etc/init.d', technique: 'T1037', severity: 'high' },
  { path: '/etc/rc.local', technique: 'T1037', severity: 'high' },
  { path: '/etc/profile', technique: 'T1546.004', severity: 'medium' },
  { path: '/etc/profile.d', technique: 'T1546.004', severity: 'medium' },
  { path: '/etc/bash.bashrc', technique: 'T1546.004', severity: 'medium' },
  ...['/lib', '/lib64', '/usr/lib', '/usr/lib64', '/usr/local/lib'].flatMap((dir) => [
    { path: `${dir}/**/*.so`, technique: 'T1574.006' as const, severity: 'high' as const, added: true },
    { path: `${dir}/**/*.so.*`, technique: 'T1574.006' as const, severity: 'high' as const, added: true },
  ]),
];

export interface Policy {
  tracked: string[];
  ignored: string[];
  mutable: string[];
  /** Replaces DEFAULT_SENSITIVE when set. */
  sensitive?: SensitiveRule[];
  /** Which small files are carried as text, and the caps; absent fields take DEFAULT_CONFIG_TEXT's. */
  configText?: Partial<ConfigTextPolicy>;
}

export function defaultPolicy(): Policy {
  return { tracked: [...DEFAULT_TRACKED], ignored: [...DEFAULT_IGNORED], mutable: [...DEFAULT_MUTABLE] };
}

/** A pattern as compileGlobs reads it: a trailing slash says nothing more. */
const trimSlashes = (glob: string): string => (glob.length > 1 ? glob.replace(/\/+$/, '') : glob);
const compilePathGlob = (glob: string): ((path: string) => boolean) => compileGlob(glob, { path: true, folder: true });
const anyOf = (matchers: ReadonlyArray<(path: string) => boolean>): ((path: string) => boolean) =>
  matchers.length === 0 ? () => false : (path) => matchers.some((m) => m(path));

/**
 * Compiles absolute-path globs into one matcher. `*` and `?` stay inside a path segment, `**`
 * crosses segments, and a pattern that matches a folder matches everything below it, so
 * `/var/log` ignores the whole subtree.
 */
export function compileGlobs(patterns: readonly string[]): (path: string) => boolean {
  return anyOf(patterns.map((glob) => compilePathGlob(trimSlashes(glob))));
}

/**
 * `compileGlobs` for a walk, which asks about the children of one folder at a time and lists no
 * folder the globs match: below such a folder a glob matches a child only as its whole path, so a
 * glob whose last segment is literal (`/var/log`, `/**\/__pycache__`) is tried only on a child of
 * that name, one map look-up instead of a test per glob per child. `child(name, path)` answers
 * what `matches(path)` does, for the child `name` at `path` of a folder `matches` does not match.
 */
export function compileGlobsForChildren(patterns: readonly string[]): { matches: (path: string) => boolean; child: (name: string, path: string) => boolean } {
  const all: Array<(path: string) => boolean> = [];
  const byName = new Map<string, Array<(path: string) => boolean>>();
  const rest: Array<(path: string) => boolean> = [];
  for (const raw of patterns) {
    const glob = trimSlashes(raw);
    const m = compilePathGlob(glob);
    all.push(m);
    const name = literalLastSegment(glob);
    if (name === undefined) rest.push(m);
    else byName.set(name, [...(byName.get(name) ?? []), m]);
  }
  const child = (name: string, path: string): boolean => {
    const named = byName.get(name);
    if (named !== undefined) for (const m of named) if (m(path)) return true;
    for (const m of rest) if (m(path)) return true;
    return false;
  };
  return { matches: anyOf(all), child };
}

/** True when `path` is `dir` or lies below it. Both absolute, without trailing slash. */
export function isUnder(path: string, dir: string): boolean {
  if (dir === '/') return true;
  return path === dir || (path.startsWith(dir) && path.charCodeAt(dir.length) === 47 /* / */);
}
