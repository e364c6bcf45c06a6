// A host's next baseline version from the manifest it was scanned against, the changes an analyst
// accepted and the observation the agent uploaded. Pure.
//
// The accepted findings say what changed and, mostly, into what: a package's new version, a
// file's new digest, its new mode/owner/type/target. They do not carry everything a file record
// needs (an added file's type, mode, owner and digest), so the agent's observation fills in, for
// the accepted paths only: a change that was not accepted stays drift against the new version.
// Where the observation disagrees with an accepted after-state (the file changed again after the
// report), the accepted state is kept, so the newer change is still reported.
import { pathKey } from '../shared/manifest.js';
import type { FileRecord, Manifest, PackageRecord } from '../shared/manifest.js';
import type { Finding } from '../shared/report.js';
import { compareCodeUnits } from '../shared/order.js';

export interface DerivedBaseline {
  manifest: Manifest;
  /** Accepted changes the observation could not complete (an added file gone since). */
  notes: string[];
}

const ATTRIBUTES = ['type', 'mode', 'uid', 'gid', 'target'] as const;

export function deriveBaseline(base: Manifest, accepted: readonly Finding[], observation: Manifest, now: Date): DerivedBaseline {
  const notes: string[] = [];
  const flat: Finding[] = [];
  const visit = (f: Finding): void => {
    flat.push(f);
    f.changes?.forEach(visit);
  };
  accepted.forEach(visit);

  const pkgId = (p: { ecosystem?: string | undefined; name?: string | undefined }): string => `${p.ecosystem}:${p.name}`;
  const packages = new Map<string, PackageRecord[]>();
  for (const p of base.packages) packages.set(pkgId(p), [...(packages.get(pkgId(p)) ?? []), p]);
  const observedPackages = new Map<string, PackageRecord[]>();
  for (const p of observation.packages) observedPackages.set(pkgId(p), [...(observedPackages.get(pkgId(p)) ?? []), p]);

  // A package-only manifest (KIWI, SBOM) has no file records to carry accepted file changes over
  // to: the version takes the file records of the observation, as a manifest of the host would.
  const packageOnly = base.files.length === 0 && flat.some((f) => f.kind.startsWith('file-'));
  const files = new Map<string, FileRecord>((packageOnly ? observation.files : base.files).map((r) => [pathKey(r), r]));
  const observed = new Map<string, FileRecord>(observation.files.map((r) => [pathKey(r), r]));

  for (const f of flat) {
    switch (f.kind) {
      case 'package-removed':
        packages.delete(pkgId(f));
        break;
      case 'package-added':
      case 'package-changed': {
        const after = typeof f.after === 'string' ? f.after : undefined;
        if (after === undefined) {
          notes.push(`${f.kind} ${pkgId(f)}: no version after the change; left as it was`);
          break;
        }
        const seen = (observedPackages.get(pkgId(f)) ?? []).filter((p) => p.version === after);
        const arch = packages.get(pkgId(f))?.[0]?.arch;
        packages.set(pkgId(f), seen.length > 0 ? seen : [{ ecosystem: f.ecosystem!, name: f.name!, version: after, ...(arch === undefined ? {} : { arch }) }]);
        break;
      }
      case 'file-removed':
        files.delete(pathKey(finding(f)));
        break;
      case 'file-added': {
        const now = observed.get(pathKey(finding(f)));
        if (now === undefined) notes.push(`file-added ${f.path}: gone from the host since; not in the new version`);
        else files.set(pathKey(now), now);
        break;
      }
      case 'file-modified': {
        const key = pathKey(finding(f));
        const was = files.get(key) ?? observed.get(key);
        const after = typeof f.after === 'string' ? f.after : undefined;
        if (was === undefined || after === undefined) {
          notes.push(`file-modified ${f.path}: no record to carry the new content; left as it was`);
          break;
        }
        const now = observed.get(key);
        // The observation's record when it holds the accepted content (its size comes with it).
        files.set(key, now?.sha256 === after ? now : { ...withoutSize(was), sha256: after });
        break;
      }
      case 'file-metadata': {
        const key = pathKey(finding(f));
        const was = files.get(key);
        const after = typeof f.after === 'object' ? f.after : undefined;
        if (was === undefined || after === undefined) {
          notes.push(`file-metadata ${f.path}: no record to carry the new attributes; left as it was`);
          break;
        }
        const changed: FileRecord = { ...was };
        for (const a of ATTRIBUTES) {
          if (!(a in after)) continue;
          const v = after[a];
          if (a === 'uid' || a === 'gid') changed[a] = Number(v);
          else if (a === 'target') {
            if (v === '') delete changed.target;
            else changed.target = String(v);
          } else (changed as Record<string, unknown>)[a] = String(v);
        }
        const now = observed.get(key);
        if (changed.type !== was.type) {
          // Another type: the old content no longer applies; the observation's does, if it agrees.
          delete changed.sha256;
          delete changed.size;
          if (now !== undefined && now.type === changed.type && now.sha256 !== undefined) Object.assign(changed, { sha256: now.sha256, ...(now.size === undefined ? {} : { size: now.size }) });
        }
        files.set(key, changed);
        break;
      }
    }
  }

  const manifest: Manifest = {
    schema: base.schema,
    image: { ...base.image, createdAt: now.toISOString(), ...(packageOnly ? { source: 'root' as const } : {}) },
    policy: base.policy,
    packages: [...packages.values()].flat().sort((a, b) => a.ecosystem.localeCompare(b.ecosystem) || a.name.localeCompare(b.name) || (a.arch ?? '').localeCompare(b.arch ?? '')),
    files: [...files.values()].sort((a, b) => compareCodeUnits(a.path, b.path)),
  };
  return { manifest, notes };
}

function finding(f: Finding): { path: string; rawPath?: string | undefined } {
  return { path: f.path ?? '', rawPath: f.rawPath };
}

function withoutSize(r: FileRecord): FileRecord {
  const { size: _size, ...rest } = r;
  return rest;
}
