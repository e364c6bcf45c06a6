import type { Dirent } from 'node:fs';
import { lstat, readdir, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { QuicksandError } from '../shared/errors.js';

/**
 * A root folder the agent reads from: `/`, a mounted image or a chroot. Every path the agent
 * reports is absolute *inside* the root; `hostPath` turns it into the path on this machine.
 */
export interface Root {
  /** Absolute path of the root on this machine, without trailing slash ('' for `/`). */
  readonly dir: string;
  hostPath(inside: string): string;
  /**
   * Maps a path as a package database names it to where it really is in the root. Debian's
   * merged /usr makes `/bin` a link to `usr/bin`, so dpkg's `/bin/bash` is `/usr/bin/bash`.
   */
  canonical(inside: string): string;
  /**
   * The entries of a folder inside the root, where the root is not one folder on this machine
   * (a container's layers seen through their overlay rules): collectors list folders with
   * `listInside`, which uses this when present.
   */
  list?(inside: string, onDenied?: () => void): Dirent[];
  /** The top-level aliases `canonical` applies (`/bin` -> `/usr/bin`), where the root knows them. */
  readonly aliases?: ReadonlyMap<string, string>;
}

/**
 * What `hostPath` gives for a path a root's view does not hold (a container's whited-out file):
 * a path that exists nowhere and fails with ENOTDIR, as `/dev/null` is never a folder. Readers
 * take ENOTDIR below it as absent, not as a damaged tree.
 */
export const ABSENT_HOST_PATH = '/dev/null/';

export async function openRoot(dir: string): Promise<Root> {
  const abs = path.resolve(dir);
  let st;
  try {
    st = await stat(abs);
  } catch {
    throw new QuicksandError('ROOT_NOT_FOUND', `root ${dir} does not exist: pass --root with the folder of the host or image to read`);
  }
  if (!st.isDirectory()) throw new QuicksandError('ROOT_NOT_FOUND', `root ${dir} is not a directory`);
  const base = abs === '/' ? '' : abs;
  const aliases = await readTopLevelAliases(abs);
  return {
    dir: base,
    hostPath: (inside) => base + inside,
    canonical: (inside) => canonicalize(inside, aliases),
    aliases,
  };
}

/** Top-level links of the root that point at a folder inside it: `bin -> usr/bin`. */
async function readTopLevelAliases(abs: string): Promise<Map<string, string>> {
  const links: Array<[string, string]> = [];
  let names: string[];
  try {
    names = await readdir(abs);
  } catch {
    return new Map();
  }
  for (const name of names) {
    const full = path.join(abs, name);
    try {
      if ((await lstat(full)).isSymbolicLink()) links.push([name, await readlink(full)]);
    } catch {
      // a link we cannot read is simply not an alias
    }
  }
  return topLevelAliases(links);
}

/** The aliases among a root's top-level links (`[name, target]`): those naming another folder. Pure. */
export function topLevelAliases(links: ReadonlyArray<readonly [string, string]>): Map<string, string> {
  const aliases = new Map<string, string>();
  for (const [name, target] of links) {
    const resolved = path.posix.resolve('/', target.startsWith('/') ? target : `/${target}`);
    if (resolved !== `/${name}` && resolved !== '/') aliases.set(`/${name}`, resolved);
  }
  return aliases;
}

export function canonicalize(inside: string, aliases: Map<string, string>): string {
  if (aliases.size === 0) return inside;
  const slash = inside.indexOf('/', 1);
  const top = slash === -1 ? inside : inside.slice(0, slash);
  const to = aliases.get(top);
  if (to === undefined) return inside;
  return slash === -1 ? to : to + inside.slice(slash);
}
