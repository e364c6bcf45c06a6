import type { PackageRecord } from '../../shared/manifest.js';
import type { PackageRef, ScanWarning } from '../../shared/report.js';
import type { Root } from '../root.js';
import { compareCodeUnits } from '../../shared/order.js';

export type DigestAlgo = 'md5' | 'sha1' | 'sha256' | 'sha384' | 'sha512';

/** What a package database says about one path it installed. */
export interface OwnedFile {
  owner: PackageRef;
  /** The package database's own digest, hex; absent where the database keeps none. */
  digest?: { algo: DigestAlgo; hex: string };
  /** Config files are meant to be edited by the admin: changed is not tampering. */
  conffile: boolean;
  /**
   * Permission bits of a regular file as the database recorded them, 4 octal digits like the
   * manifest's `mode` (rpm, apk). A package-only manifest compares against it, as `rpm -V` does.
   */
  mode?: string;
  /** Owner and group as the database recorded them, as numbers in the root's own passwd/group (rpm -V's U, G). */
  uid?: number;
  gid?: number;
  /** A symlink's target as the database recorded it (rpm -V's L). */
  target?: string;
  /** A local `dpkg-divert` moved the package's file from this path to `to`: what is here is not the package's. */
  diversion?: { to: string; by: string };
  /** The package's file, moved here from this path by a local `dpkg-divert`. */
  divertedFrom?: string;
}

/** What one package operation did, as a package manager recorded it. */
export interface PackageEvent {
  ecosystem: PackageRef['ecosystem'];
  name: string;
  action: 'install' | 'change' | 'remove';
  before?: string;
  after?: string;
}

/**
 * One operation of a package manager that explains drift: one apt command, one rpm
 * transaction, one `pip install` run. `start`/`end` are as the tool recorded them (local time
 * for dpkg/apt logs, UTC ISO where the source is an epoch time), `YYYY-MM-DDTHH:MM:SS[...]`.
 */
export interface ChangeSet {
  id: string;
  tool: string;
  start?: string;
  end?: string;
  command?: string;
  user?: string;
  events: PackageEvent[];
}

export interface Collected {
  packages: PackageRecord[];
  /** Canonical absolute path inside the root → the package that owns it. */
  owned: Map<string, OwnedFile>;
  warnings: ScanWarning[];
  /** The package manager's own records of what was done, oldest first. */
  changeSets?: ChangeSet[];
  /**
   * `ecosystem:name` → canonical path of the file that records the package (a dist-info's
   * METADATA, a gemspec). When an earlier collector (an OS package) owns that path, the package
   * is the OS package's and is not reported a second time.
   */
  records?: Map<string, string>;
  /**
   * Read from files the root's `hostPath` did not name (a tool that reads a whole folder): the
   * package cache (cache.ts) cannot tell when they change, so this result is never remembered.
   */
  uncacheable?: boolean;
}

/** One package ecosystem. A new ecosystem is one file exporting one of these plus a registry line. */
export interface Collector {
  readonly ecosystem: PackageRef['ecosystem'];
  /** Returns null when the ecosystem is absent from this root (no database at all). */
  collect(root: Root): Promise<Collected | null>;
}

/**
 * Warning codes that mean a whole package database could not be read: its packages went
 * unchecked, so a report without drift is incomplete, not clean.
 */
export const DATABASE_UNREADABLE_CODES: ReadonlySet<string> = new Set(['RPMDB_UNREADABLE', 'RPMDB_UNSUPPORTED', 'DPKG_STATUS_UNREADABLE', 'APKDB_UNREADABLE', 'COLLECTOR_FAILED']);

/** Orders two timestamps of the one ISO form these collectors write (a missing one first), as `<=` compares them elsewhere. */
export function compareTimes(a: string | undefined, b: string | undefined): number {
  return compareCodeUnits(a ?? '', b ?? '');
}
