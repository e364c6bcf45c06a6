import { readFile } from 'node:fs/promises';
import { MANIFEST_SCHEMA } from '../shared/manifest.js';
import type { FileRecord, Manifest } from '../shared/manifest.js';
import type { Policy } from '../shared/policy.js';
import type { ObserveResult } from './observe.js';
import type { Root } from './root.js';

export interface ImageIdentity {
  name: string;
  version: string;
}

/** Turns an observation of an image root into its manifest. Pure. */
export function manifestFromObservation(obs: ObserveResult, policy: Policy, image: ImageIdentity, createdAt: Date): Manifest {
  const files: FileRecord[] = obs.files.map(({ unreadable: _skip, ...record }) => {
    const owner = record.rawPath === undefined ? obs.owned.get(record.path)?.owner : undefined;
    return owner ? { ...record, owner } : record;
  });
  return {
    schema: MANIFEST_SCHEMA,
    image: { ...image, createdAt: createdAt.toISOString(), source: 'root' },
    policy,
    packages: [...obs.packages].sort((a, b) => a.ecosystem.localeCompare(b.ecosystem) || a.name.localeCompare(b.name)),
    files,
  };
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
