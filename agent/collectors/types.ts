import type { PackageRecord } from '../../shared/manifest.js';
import type { PackageRef, ScanWarning } from '../../shared/report.js';
import type { Root } from '../root.js';

export type DigestAlgo = 'md5' | 'sha1' | 'sha256';

/** What a package database says about one path it installed. */
export interface OwnedFile {
  owner: PackageRef;
  /** The package database's own digest, hex; absent where the database keeps none. */
  digest?: { algo: DigestAlgo; hex: string };
  /** Config files are meant to be edited by the admin: changed is not tampering. */
  conffile: boolean;
}

export interface Collected {
  packages: PackageRecord[];
  /** Canonical absolute path inside the root → the package that owns it. */
  owned: Map<string, OwnedFile>;
  warnings: ScanWarning[];
}

/** One package ecosystem. A new ecosystem is one file exporting one of these plus a registry line. */
export interface Collector {
  readonly ecosystem: PackageRef['ecosystem'];
  /** Returns null when the ecosystem is absent from this root (no database at all). */
  collect(root: Root): Promise<Collected | null>;
}
