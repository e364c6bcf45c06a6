// Real Debian root filesystems for the integration tests, built with debootstrap and cached
// outside the repo (keyed by a version string) so only the first run pays for them.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
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

/** A copy of minbase where one real `apt-get install` added APT_EXTRA (and their dependencies). */
export function ensureWithPackages(): string {
  const base = ensureMinbase();
  return buildOnce(withPackagesPath(), (tmp) => {
    execFileSync('cp', ['-a', base, tmp]);
    copyFileSync('/etc/resolv.conf', path.join(tmp, 'etc/resolv.conf'));
    aptInChroot(tmp, ['install', '-y', '-q', '--no-install-recommends', ...APT_EXTRA]);
    // Put the image's own resolv.conf content back: DNS config is not what this fixture is about.
    copyFileSync(path.join(base, 'etc/resolv.conf'), path.join(tmp, 'etc/resolv.conf'));
  });
}

export function aptInChroot(root: string, args: string[]): void {
  execFileSync('chroot', [root, 'apt-get', ...args], {
    stdio: 'ignore',
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
