import { readFile } from 'node:fs/promises';
import { MANIFEST_SCHEMA } from '../../shared/manifest-format.js';
import type { FileRecord, Manifest, PackageRecord } from '../../shared/manifest.js';
import type { OwnedFile } from '../collect/types.js';
import type { ObservedFile } from '../fingerprint/walk.js';
import type { ManifestHeader } from './stream.js';
import type { Policy } from '../../shared/policy.js';
import type { ObserveResult } from '../fingerprint/observe.js';
import type { Root } from '../root.js';

export interface ImageIdentity {
  name: string;
  version: string;
}

/** Turns an observation of an image root into its manifest. Pure. */
export function manifestFromObservation(obs: ObserveResult, policy: Policy, image: ImageIdentity, createdAt: Date): Manifest {
  return { ...manifestHeader(obs.packages, policy, image, createdAt), files: obs.files.map((f) => manifestRecord(f, obs.owned)) };
}

/** Everything of the manifest but its files. Pure. */
export function manifestHeader(packages: readonly PackageRecord[], policy: Policy, image: ImageIdentity, createdAt: Date): ManifestHeader {
  return {
    schema: MANIFEST_SCHEMA,
    image: { ...image, createdAt: createdAt.toISOString(), source: 'root' },
    policy,
    packages: [...packages].sort((a, b) => a.ecosystem.localeCompare(b.ecosystem) || a.name.localeCompare(b.name)),
  };
}

/** The manifest's record of one observed path: no read error, plus the package that owns it. Pure. */
export function manifestRecord(file: ObservedFile, owned: ReadonlyMap<string, OwnedFile>): FileRecord {
  const { unreadable: _skip, ...record } = file;
  const owner = record.rawPath === undefined ? owned.get(record.path)?.owner : undefined;
  return owner ? { ...record, owner } : record;
}

/**
 * `manifestRecord` made in place, for a streamed walk whose records nothing else holds: no copy
 * per path on a tree of millions. Gives the same JSON.
 */
export function intoManifestRecord(file: ObservedFile, owned: ReadonlyMap<string, OwnedFile>): FileRecord {
  if (file.unreadable !== undefined) delete file.unreadable;
  const owner = file.rawPath === undefined ? owned.get(file.path)?.owner : undefined;
  if (owner) (file as FileRecord).owner = owner;
  return file;
}

/** A name for an image nobody named: `debian-12` from the root's os-release, else `image`. */
export async function defaultImageName(root: Root): Promise<string> {
  for (const file of ['/etc/os-release', '/usr/lib/os-release']) {
    try {
      const text = await readFile(root.hostPath(file), 'utf8');
      const field = (k: string): string | undefined => new RegExp(`^${k}="?([^"\\n]*)"?$`, 'm').exec(text)?.[1];
      const id = field('ID');
      if (id) return [id, field('VERSION_ID')].filter(Boolean).join('-');
    } catch {
      // try the next one
    }
  }
  return 'image';
}
