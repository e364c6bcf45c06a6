// Real Debian root filesystems for the integration tests, built with debootstrap and cached
// outside the repo (keyed by a version string) so only the first run pays for them.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

// Bump when the way the trees are built changes; old caches are then simply not used.
const FIXTURE_VERSION = 'v1';
const SUITE = 'bookworm';
export const CACHE_DIR = process.env.QUICKSAND_TEST_CACHE ?? '/var/tmp/quicksand-test-cache';
const MIRROR = process.env.QUICKSAND_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';

/** Packages the "mutated" tree gets from one real `apt-get install`. */
export const APT_EXTRA = ['netcat-openbsd', 'less'];

export function minbasePath(): string {
  return path.join(CACHE_DIR, `debian-${SUITE}-minbase-${FIXTURE_VERSION}`);
}

export function withPackagesPath(): string {
  return path.join(CACHE_DIR, `debian-${SUITE}-minbase-${FIXTURE_VERSION}-apt-${APT_EXTRA.join('+')}`);
}

/** Builds into a temporary folder and renames it into place, so a half-built tree is never used. */
function buildOnce(target: string, build: (tmp: string) => void): string {
  if (existsSync(target)) return target;
  mkdirSync(CACHE_DIR, { recursive: true });
  const tmp = `${target}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    build(tmp);
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    if (existsSync(target)) return target; // another process won the race
    throw err;
  }
  return target;
}

export function ensureMinbase(): string {
  return buildOnce(minbasePath(), (tmp) => {
    execFileSync('debootstrap', ['--variant=minbase', SUITE, tmp, MIRROR], { stdio: 'ignore', timeout: 600_000 });
  });
}

/**
 * Builds the tree at `target` once: a copy of minbase that `change` alters with this machine's
 * DNS config in place (apt reaches the archive), which is put back afterwards: DNS config is not
 * what these fixtures are about.
 */
function buildFromMinbase(target: string, change: (tmp: string) => void): string {
  const base = ensureMinbase();
  return buildOnce(target, (tmp) => {
    execFileSync('cp', ['-a', base, tmp]);
    copyFileSync('/etc/resolv.conf', path.join(tmp, 'etc/resolv.conf'));
    change(tmp);
    copyFileSync(path.join(base, 'etc/resolv.conf'), path.join(tmp, 'etc/resolv.conf'));
  });
}

/** A copy of minbase where one real `apt-get install` added APT_EXTRA (and their dependencies). */
export function ensureWithPackages(): string {
  return buildFromMinbase(withPackagesPath(), (tmp) => aptInChroot(tmp, ['install', '-y', '-q', '--no-install-recommends', ...APT_EXTRA]));
}

/**
 * Packages of the "languages" tree: interpreters and build tools so pip, gem and cpan can
 * really install something inside the chroot, a pip package shipped by dpkg (python3-yaml)
 * that must never be reported twice, and netcat-openbsd's dependency so that installing it
 * later is one package. netcat-openbsd itself is only downloaded, so a test can install it
 * with one real apt command without reaching the archive again.
 */
export const LANGS_EXTRA = ['python3-pip', 'python3-yaml', 'ruby', 'perl', 'make', 'less', 'libbsd0'];
export const LANGS_DOWNLOADED = ['netcat-openbsd'];

export function withLanguagesPath(): string {
  return path.join(CACHE_DIR, `debian-${SUITE}-minbase-${FIXTURE_VERSION}-langs-${LANGS_VERSION}`);
}
// Bump when LANGS_EXTRA or the way the languages tree is built changes.
const LANGS_VERSION = 'l1';

/** minbase plus LANGS_EXTRA from one real apt-get install, and LANGS_DOWNLOADED in apt's cache. */
export function ensureWithLanguages(): string {
  return buildFromMinbase(withLanguagesPath(), (tmp) => {
    aptInChroot(tmp, ['install', '-y', '-q', '--no-install-recommends', ...LANGS_EXTRA]);
    aptInChroot(tmp, ['install', '-y', '-q', '--no-install-recommends', '--download-only', ...LANGS_DOWNLOADED]);
    // A local package at 1.0 that a test can upgrade with one real apt command.
    const deb = buildDemoDeb(path.join(tmp, 'root'), '1.0');
    aptInChroot(tmp, ['install', '-y', '-q', `/root/${path.basename(deb)}`]);
    rmSync(deb);
  });
}

/**
 * Builds the tiny Debian package `qs-demo` (one script in /usr/bin, one doc file) with the real
 * `dpkg-deb` into `dir` and returns the .deb's path.
 */
export function buildDemoDeb(dir: string, version: string): string {
  const src = mkdtempSync(path.join(CACHE_DIR, 'deb-'));
  try {
    mkdirSync(path.join(src, 'DEBIAN'));
    mkdirSync(path.join(src, 'usr/bin'), { recursive: true });
    mkdirSync(path.join(src, 'usr/share/doc/qs-demo'), { recursive: true });
    writeFileSync(
      path.join(src, 'DEBIAN/control'),
      `Package: qs-demo\nVersion: ${version}\nArchitecture: all\nMaintainer: Quicksand tests <tests@example.invalid>\nDescription: demo package for the drift tests\n`,
    );
    writeFileSync(path.join(src, 'usr/bin/qs-demo'), `#!/bin/sh\necho qs-demo ${version}\n`, { mode: 0o755 });
    writeFileSync(path.join(src, 'usr/share/doc/qs-demo/README'), `qs-demo ${version}\n`);
    mkdirSync(dir, { recursive: true });
    const out = path.join(dir, `qs-demo_${version}_all.deb`);
    execFileSync('dpkg-deb', ['--root-owner-group', '--build', src, out], { stdio: 'ignore' });
    return out;
  } finally {
    rmSync(src, { recursive: true, force: true });
  }
}

export function aptInChroot(root: string, args: string[]): void {
  runInChroot(root, ['apt-get', ...args]);
}

/** Runs one command inside the chroot with a clean environment; returns its stdout. */
export function runInChroot(root: string, argv: string[], opts: { cwd?: string } = {}): string {
  const [cmd, ...args] = argv;
  const inner = opts.cwd ? ['sh', '-c', 'cd "$0" && exec "$@"', opts.cwd, cmd!, ...args] : [cmd!, ...args];
  return execFileSync('chroot', [root, ...inner], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 600_000,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive', LANG: 'C' },
  });
}

/** A private, throw-away copy of a cached tree (same filesystem as the cache: fast). */
export function copyTree(source: string): { dir: string; remove: () => void } {
  const parent = mkdtempSync(path.join(CACHE_DIR, 'work-'));
  const dir = path.join(parent, 'root');
  execFileSync('cp', ['-a', source, dir]);
  return { dir, remove: () => rmSync(parent, { recursive: true, force: true }) };
}

export function withSudoPath(): string {
  return path.join(CACHE_DIR, `debian-${SUITE}-minbase-${FIXTURE_VERSION}-sudo-${SUDO_VERSION}`);
}
// Bump when the sudo tree's contents change.
const SUDO_VERSION = 's1';

/**
 * minbase plus a real `sudo` from the archive, a user `alice` allowed to run anything without a
 * password, and sudo logging to its own logfile (`/var/log/sudo.log`), as an admin sets it up.
 */
export function ensureWithSudo(): string {
  return buildFromMinbase(withSudoPath(), (tmp) => {
    aptInChroot(tmp, ['install', '-y', '-q', '--no-install-recommends', 'sudo']);
    runInChroot(tmp, ['useradd', '-m', '-s', '/bin/sh', 'alice']);
    writeFileSync(path.join(tmp, 'etc/sudoers.d/quicksand-test'), 'Defaults logfile=/var/log/sudo.log\nalice ALL=(root) NOPASSWD: ALL\n', { mode: 0o440 });
  });
}
