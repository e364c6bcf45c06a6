import type { FileRecord, Manifest, PackageRecord, PackageRef } from '../../shared/manifest.js';
import { pathKey } from '../../shared/manifest-format.js';
import { compileGlobs, isUnder } from '../../shared/policy.js';
import type { Policy } from '../../shared/policy.js';
import { compareSeverity, maxSeverity } from '../../shared/findings.js';
import type { Severity } from '../../shared/findings.js';
import type { Finding } from '../../shared/report.js';
import type { ChangeSet, OwnedFile } from '../collect/types.js';
import { attributeChangeSets } from '../collect/change-sets.js';
import type { Observation } from '../fingerprint/observe.js';
import type { ObservedFile } from '../fingerprint/walk.js';
import { topLevelTracked } from '../fingerprint/walk.js';
import { capabilityText } from '../fingerprint/capability.js';
import { compileSensitive, raiseSensitive } from './sensitive.js';
import type { SensitiveMatcher } from './sensitive.js';
import { technique } from '../../shared/attack.js';
import type { TechniqueId } from '../../shared/attack.js';
import { compareCodeUnits } from '../../shared/order.js';

/** Result of checking a package-owned file against its package database's digest (see verify.ts). */
export type Verdict = 'match' | 'mismatch';

/** Package-owned files that must be checked against the package database's own digest. */
export function selectForVerification(manifest: Manifest, obs: Observation): ObservedFile[] {
  const expected = indexFiles(manifest);
  return obs.files.filter((f) => needsVerification(f, expected.get(f.path), obs.owned));
}

/** One file of `selectForVerification`: `was` is the manifest's record of the same path. */
export function needsVerification(f: ObservedFile, was: FileRecord | undefined, owned: ReadonlyMap<string, OwnedFile>): boolean {
  if (f.type !== 'file' || f.sha256 === undefined || f.rawPath !== undefined) return false;
  if (owned.get(f.path)?.digest === undefined) return false;
  // Content the manifest already vouches for needs no second opinion.
  return was?.sha256 !== f.sha256;
}

const SETID = 0o6000;
const pkgId = (p: { ecosystem: string; name: string }): string => `${p.ecosystem}:${p.name}`;
const pkgKey = (p: PackageRecord): string => `${p.ecosystem}:${p.name}:${p.arch ?? ''}`;
const modeOf = (f: { mode: string }): number => parseInt(f.mode, 8);
const isExecutable = (f: ObservedFile | undefined): boolean => f?.type === 'file' && (modeOf(f) & 0o111) !== 0;

/**
 * Compares a manifest with an observation and returns the findings, most severe first. Pure:
 * `verdicts` carries the package-database checks the caller already ran on the files that
 * `selectForVerification` picked. A file that belongs to a package that was added, removed or
 * changed nests under that package's finding, so one install is one finding. `where`: the paths
 * the observation covers, when it is not every tracked path (an event's scope).
 */
export function diff(manifest: Manifest, obs: Observation, verdicts: ReadonlyMap<string, Verdict>, where?: (path: string) => boolean): Finding[] {
  const pkgs = comparePackages(manifest.packages, obs.packages);
  const rules = fileRules(manifest.policy, obs.owned, pkgs.unchanged, manifest.files.length === 0);

  const expected = indexFiles(manifest);
  const observed = new Map<string, ObservedFile>();
  for (const f of obs.files) if (!rules.ignored(f.path)) observed.set(pathKey(f), f);
  const fileFindings: FileFinding[] = [];

  // Files: present now
  for (const [key, now] of observed) {
    const was = rules.packageOnly ? undefined : expected.get(key);
    fileFindings.push(...comparePresent(rules, was, now, verdicts.get(now.path)));
  }

  // Files: gone
  const gone: FileFinding[] = [];
  if (!rules.packageOnly) {
    for (const was of manifest.files) {
      if (observed.has(pathKey(was)) || rules.ignored(was.path)) continue;
      gone.push(compareGone(rules, was));
    }
  } else gone.push(...missingPackageFiles(rules, manifest.policy.tracked, (p) => observed.has(p), where));
  const context = { sensitive: compileSensitive(manifest.policy), ...(obs.uidZero ? { uidZero: obs.uidZero } : {}) };
  return finishFindings(pkgs.findings, resolveCauses(fileFindings, gone, observed, obs.owned), obs.changeSets ?? [], context);
}

/**
 * The last, whole-scan steps shared by `diff` and the streaming scan: folders made for one
 * package join it, files nest under their package's finding, packages get their change set.
 */
export function finishFindings(pkgFindings: Map<string, Finding>, fileFindings: FileFinding[], changeSets: readonly ChangeSet[], context: FindingContext): Finding[] {
  attributeFolders(fileFindings);
  // What a package operation explains is that operation's; the rest may be an intruder's.
  for (const ff of fileFindings) if (explainedBy(ff, pkgFindings) === undefined) raiseSensitive(ff.finding, context.sensitive, context.uidZero ?? []);
  const top = nestFindings(pkgFindings, fileFindings);
  attributeChangeSets(top, changeSets);
  return top;
}

/** What the whole-scan steps need beyond the findings: the policy's sensitive places, the host's accounts. */
export interface FindingContext {
  sensitive: SensitiveMatcher;
  /** Accounts with uid 0 besides root in the host's /etc/passwd (see `uidZeroAccounts`). */
  uidZero?: readonly string[];
}

/** Package findings by `ecosystem:name`, and whether a package kept its version. */
export interface PackageComparison {
  findings: Map<string, Finding>;
  unchanged: (o: PackageRef | undefined) => boolean;
}

export function comparePackages(manifestPackages: readonly PackageRecord[], observedPackages: readonly PackageRecord[]): PackageComparison {
  const before = new Map(manifestPackages.map((p) => [pkgKey(p), p]));
  const after = new Map(observedPackages.map((p) => [pkgKey(p), p]));
  const pkgFindings = new Map<string, Finding>();
  const versionBefore = new Map(manifestPackages.map((p) => [pkgId(p), p.version]));
  const versionAfter = new Map(observedPackages.map((p) => [pkgId(p), p.version]));
  const matched = new Set<string>();
  for (const [key, p] of after) {
    // An SBOM often names no architecture: such a record matches the package of any arch.
    const oldKey = before.has(key) ? key : pkgKey({ ...p, arch: undefined });
    const old = before.get(oldKey);
    if (old) matched.add(oldKey);
    if (!old) pkgFindings.set(pkgId(p), { kind: 'package-added', severity: 'high', ecosystem: p.ecosystem, name: p.name, after: p.version });
    else if (old.version !== p.version)
      pkgFindings.set(pkgId(p), { kind: 'package-changed', severity: 'high', ecosystem: p.ecosystem, name: p.name, before: old.version, after: p.version });
  }
  for (const [key, p] of before) {
    if (matched.has(key)) continue;
    // Same name, other arch (a cross-grade): one change, not an add plus a remove.
    const added = pkgFindings.get(pkgId(p));
    if (added?.kind === 'package-added') {
      pkgFindings.set(pkgId(p), { ...added, kind: 'package-changed', before: p.version });
      continue;
    }
    if (!added) pkgFindings.set(pkgId(p), { kind: 'package-removed', severity: 'high', ecosystem: p.ecosystem, name: p.name, before: p.version });
  }
  const unchanged = (o: PackageRef | undefined): boolean =>
    o !== undefined && versionBefore.get(pkgId(o)) !== undefined && versionBefore.get(pkgId(o)) === versionAfter.get(pkgId(o));
  return { findings: pkgFindings, unchanged };
}

/** What the per-path rules need to know about the whole scan; built once per scan. */
export interface FileRules {
  ignored: (path: string) => boolean;
  mutable: (path: string) => boolean;
  owned: ReadonlyMap<string, OwnedFile>;
  packageUnchanged: (o: PackageRef | undefined) => boolean;
  /** A package-only manifest (KIWI, SBOM) has no file records: package verification stands in. */
  packageOnly: boolean;
}

export function fileRules(policy: Policy, owned: ReadonlyMap<string, OwnedFile>, packageUnchanged: (o: PackageRef | undefined) => boolean, packageOnly: boolean): FileRules {
  return { ignored: compileGlobs(policy.ignored), mutable: compileGlobs(policy.mutable), owned, packageUnchanged, packageOnly };
}

/**
 * A file finding and the package that explains it. `linkedFrom` is set when no package owns the
 * path: its cause may still be found by following its update-alternatives links; `formerTarget`
 * is where a changed alternatives link pointed before (`resolveCauses` settles both).
 */
export interface FileFinding {
  finding: Finding;
  cause?: PackageRef | undefined;
  linkedFrom?: ObservedFile;
  formerTarget?: string;
  /** Other packages that could explain it; the first with a package finding of its own wins. */
  alternatives?: PackageRef[];
}

/** The findings of one path that exists now; `was` is the manifest's record of it, if any. Pure. */
export function comparePresent(rules: FileRules, was: FileRecord | undefined, now: ObservedFile, verdict: Verdict | undefined): FileFinding[] {
  // Nearly every path of a warm scan: decided without building anything (1M paths: ~1 s less).
  if (was !== undefined && !rules.packageOnly && unchangedRecord(was, now)) return [];
  const out: FileFinding[] = [];
  const owned = now.rawPath === undefined ? rules.owned.get(now.path) : undefined;
  const owner = owned?.owner;
  const base = { path: now.path, ...(now.rawPath ? { rawPath: now.rawPath } : {}), ...(owner ? { owner } : {}) };
  const isMutable = rules.mutable(now.path);
  if (rules.packageOnly || was !== undefined) {
    // A record without a digest (its file was unreadable when the manifest was made) has no
    // content to compare: the package database's digest stands in, as with no record at all.
    const comparable = was !== undefined && (was.type !== 'file' || was.sha256 !== undefined);
    const contentChanged = comparable
      ? was.type === 'file' && now.type === 'file' && now.unreadable === undefined && was.sha256 !== now.sha256
      : verdict === 'mismatch' || (owned?.diversion !== undefined && now.type === 'file');
    if (contentChanged) {
      const { severity, reason, attack } = modifiedSeverity(now, owned, rules.packageUnchanged(owner), verdict, isMutable);
      out.push({ finding: { kind: 'file-modified', severity, ...base, ...(was?.sha256 ? { before: was.sha256 } : {}), ...(now.sha256 ? { after: now.sha256 } : {}), reason, ...techniqueOf(attack) }, cause: owner });
    }
    if (was) {
      const changed = metadataChanges(was, now);
      if (changed) {
        const { severity, reason, attack } = metadataSeverity(was, now, owned, rules.packageUnchanged(owner), isMutable, new Set(Object.keys(changed.before)));
        const formerTarget =
          was.type === 'symlink' && was.target !== undefined && isUnder(was.path, '/etc/alternatives') ? joinTarget(was.path, was.target) : undefined;
        out.push({
          finding: { kind: 'file-metadata', severity, ...base, before: changed.before, after: changed.after, reason, ...techniqueOf(attack) },
          cause: owner,
          ...(owner ? {} : { linkedFrom: now }),
          ...(formerTarget ? { formerTarget } : {}),
        });
      }
    } else if (owned) {
      // No file record: what the package database recorded stands in for it (rpm -V's M, U, G, L).
      const { unreadable: _skip, ...current } = now;
      const recorded = {
        ...current,
        ...(owned.mode !== undefined && now.type === 'file' ? { mode: owned.mode } : {}),
        ...(owned.uid !== undefined ? { uid: owned.uid } : {}),
        ...(owned.gid !== undefined ? { gid: owned.gid } : {}),
        ...(owned.target !== undefined && now.type === 'symlink' ? { target: owned.target } : {}),
      };
      const changed = metadataChanges(recorded, now);
      if (changed) {
        const { severity, reason, attack } = metadataSeverity(recorded, now, owned, rules.packageUnchanged(owner), isMutable, new Set(Object.keys(changed.before)));
        out.push({ finding: { kind: 'file-metadata', severity, ...base, before: changed.before, after: changed.after, reason, ...techniqueOf(attack) }, cause: owner });
      }
    }
    return out;
  }
  // A package installed after the image: its own database is all there is to check against.
  const { severity, reason, attack } =
    verdict === 'mismatch' && owned && !owned.conffile && !isMutable
      ? { severity: 'critical' as const, reason: `content differs from ${owned.owner.ecosystem} package ${owned.owner.name}'s own digest: changed after it was installed`, attack: 'T1554' as const }
      : addedSeverity(now, isMutable, owned);
  out.push({ finding: { kind: 'file-added', severity, ...base, reason, ...techniqueOf(attack) }, cause: owner, ...(owner ? {} : { linkedFrom: now }) });
  return out;
}

/** The finding of a manifest path that is gone (and not ignored). Pure. */
export function compareGone(rules: FileRules, was: FileRecord): FileFinding {
  const unchanged = rules.packageUnchanged(was.owner);
  let severity: Severity = 'low';
  let reason: string | undefined;
  if (rules.mutable(was.path)) severity = 'info';
  else if (was.owner && unchanged) {
    severity = 'high';
    reason = `installed by ${was.owner.ecosystem} package ${was.owner.name}, which did not change`;
  } else if (isUnder(was.path, '/etc')) severity = 'medium';
  return {
    finding: { kind: 'file-removed', severity, path: was.path, ...(was.rawPath ? { rawPath: was.rawPath } : {}), ...(was.owner ? { owner: was.owner } : {}), ...(reason ? { reason } : {}) },
    cause: was.owner,
  };
}

/**
 * Under a package-only manifest (KIWI, SBOM), the package databases stand in for the file
 * records: a file they list (with a digest, so a regular file) under a tracked path that the walk
 * did not find is gone, what `debsums` and `rpm -V` call missing. `seen`: found by the walk;
 * `where`: the paths the walk covered, when not all tracked ones. Pure.
 */
export function missingPackageFiles(rules: FileRules, tracked: readonly string[], seen: (path: string) => boolean, where?: (path: string) => boolean): FileFinding[] {
  const tops = topLevelTracked(tracked);
  const out: FileFinding[] = [];
  for (const [path, o] of rules.owned) {
    if (o.digest === undefined || o.diversion !== undefined || seen(path) || rules.ignored(path)) continue;
    if (!tops.some((t) => isUnder(path, t)) || (where && !where(path))) continue;
    out.push(compareGone(rules, { path, type: 'file', mode: '0644', uid: 0, gid: 0, owner: o.owner }));
  }
  return out;
}

/**
 * Settles the causes of the findings of present paths, then appends the gone ones. A finding no
 * package owns may be explained by its update-alternatives links: the package the link leads to
 * now, or the one it led to before (often the package being removed). Several candidates: the
 * first that has a package finding of its own takes it. `links` needs to hold only the tree's
 * symbolic links (by path): nothing else is looked at.
 */
export function resolveCauses(present: readonly FileFinding[], gone: readonly FileFinding[], links: ReadonlyMap<string, ObservedFile>, owned: ReadonlyMap<string, OwnedFile>): FileFinding[] {
  let goneOwners: Map<string, PackageRef> | undefined;
  const formerOwner = (target: string): PackageRef | undefined => {
    const path = resolveInTree(target, links);
    goneOwners ??= new Map(gone.filter((g) => g.cause && g.finding.path).map((g) => [g.finding.path!, g.cause!]));
    return owned.get(path)?.owner ?? goneOwners.get(path);
  };
  const out: FileFinding[] = present.map((ff) => {
    if (ff.linkedFrom === undefined && ff.formerTarget === undefined) return ff;
    const candidates = [ff.cause, ff.linkedFrom && alternativesCause(ff.linkedFrom, links, owned), ff.formerTarget && formerOwner(ff.formerTarget)];
    const causes = candidates.filter((c): c is PackageRef => c !== undefined && c !== '');
    return { finding: ff.finding, cause: causes[0], ...(causes.length > 1 ? { alternatives: causes.slice(1) } : {}) };
  });
  return [...out, ...gone];
}

/** The package finding a file finding nests under, if any. */
function explainedBy({ cause, alternatives }: FileFinding, pkgFindings: ReadonlyMap<string, Finding>): Finding | undefined {
  const chosen = [cause, ...(alternatives ?? [])].find((c) => c !== undefined && pkgFindings.has(pkgId(c)));
  return chosen ? pkgFindings.get(pkgId(chosen)) : undefined;
}

/** Nests files under the package finding that explains them; most severe first. */
export function nestFindings(pkgFindings: Map<string, Finding>, fileFindings: readonly FileFinding[]): Finding[] {
  const top: Finding[] = [];
  for (const ff of fileFindings) {
    const { finding } = ff;
    const parent = explainedBy(ff, pkgFindings);
    if (parent && finding.severity !== 'info') {
      (parent.changes ??= []).push(finding);
      parent.severity = maxSeverity(parent.severity, finding.severity);
    } else top.push(finding);
  }
  for (const p of pkgFindings.values()) {
    p.changes?.sort(byPath);
    top.push(p);
  }
  return top.sort(bySeverity);
}

/**
 * A folder that appeared without an owner, holding only new entries that one package explains
 * (`/usr/local/lib/python3.11/dist-packages` made by the first `pip install`), was made for that
 * package: it joins the package's finding instead of standing alone.
 */
function attributeFolders(fileFindings: FileFinding[]): void {
  // '/' sorts before every other byte here, so a folder's entries follow it without a gap.
  const key = (e: { finding: Finding }): string => (e.finding.path ?? '').replaceAll('/', '\u0000');
  const sorted = [...fileFindings].sort((a, b) => compareCodeUnits(key(a), key(b)));
  // Deepest first: a sub-folder has its verdict before its parent looks at it.
  for (let i = sorted.length - 1; i >= 0; i--) {
    const entry = sorted[i]!;
    if (entry.cause || entry.finding.kind !== 'file-added' || entry.finding.path === undefined) continue;
    const dir = entry.finding.path;
    let cause: PackageRef | undefined;
    let consistent = true;
    for (let j = i + 1; j < sorted.length && isUnder(sorted[j]!.finding.path ?? '', dir); j++) {
      const below = sorted[j]!;
      if (below.finding.kind !== 'file-added') continue;
      if (!below.cause || (cause && pkgId(cause) !== pkgId(below.cause))) {
        consistent = false;
        break;
      }
      cause = below.cause;
    }
    if (consistent && cause) entry.cause = cause;
  }
}

// Built once per manifest and shared by selectForVerification and diff.
const fileIndexes = new WeakMap<Manifest, Map<string, Manifest['files'][number]>>();
function indexFiles(manifest: Manifest): Map<string, Manifest['files'][number]> {
  let index = fileIndexes.get(manifest);
  if (!index) {
    index = new Map(manifest.files.map((f) => [pathKey(f), f]));
    fileIndexes.set(manifest, index);
  }
  return index;
}

function byPath(a: Finding, b: Finding): number {
  return compareCodeUnits(a.path ?? '', b.path ?? '');
}

function bySeverity(a: Finding, b: Finding): number {
  return compareSeverity(a.severity, b.severity) || compareCodeUnits(a.kind, b.kind) || compareCodeUnits(a.name ?? a.path ?? '', b.name ?? b.path ?? '');
}

type Rated = { severity: Severity; reason?: string; attack?: TechniqueId };

function techniqueOf(id: TechniqueId | undefined): Pick<Finding, 'attack'> {
  return id ? { attack: technique(id) } : {};
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function addedSeverity(now: ObservedFile, isMutable: boolean, owned: OwnedFile | undefined): Rated {
  if (isMutable) return { severity: 'info', reason: 'the policy declares this path mutable' };
  if (owned?.divertedFrom !== undefined) {
    return { severity: 'high', reason: `${owned.owner.ecosystem} package ${owned.owner.name}'s file, moved here by a local dpkg-divert of ${owned.divertedFrom}`, attack: 'T1036.005' };
  }
  if (now.type === 'file' && (modeOf(now) & SETID) !== 0) {
    return { severity: 'critical', reason: `new setuid/setgid file${basename(now.path).startsWith('.') ? ' with a hidden name' : ''}`, attack: 'T1548.001' };
  }
  if (now.type === 'file' && now.capability !== undefined) return { severity: 'critical', reason: `new file with capabilities: ${capabilityText(now.capability)}`, attack: 'T1548' };
  if (now.type === 'dir' && (modeOf(now) & 0o1002) === 0o002) return { severity: 'high', reason: 'new world-writable folder without the sticky bit', attack: 'T1222.002' };
  if (isExecutable(now)) return { severity: 'high', reason: 'new executable in a system path' };
  if (isUnder(now.path, '/etc')) return { severity: 'medium' };
  return { severity: 'low' };
}

function modifiedSeverity(now: ObservedFile, owned: OwnedFile | undefined, pkgUnchanged: boolean, verdict: Verdict | undefined, isMutable: boolean): Rated {
  if (isMutable && !owned?.diversion) return { severity: 'info', reason: 'the policy declares this path mutable' };
  if (owned?.diversion) {
    const { to, by } = owned.diversion;
    return { severity: 'critical', reason: `replaced: a ${by} dpkg-divert moved ${owned.owner.ecosystem} package ${owned.owner.name}'s file to ${to} and this took its place`, attack: 'T1036.005' };
  }
  if (owned && !owned.conffile && pkgUnchanged) {
    const who = `${owned.owner.ecosystem} package ${owned.owner.name}`;
    // The image's record outranks the host's database, which lives on the host: one that agrees
    // with changed content was changed to match it.
    if (verdict === 'match') return { severity: 'critical', reason: `content differs from the image's record, and the package did not change: tampering; ${who}'s database digest was changed to match it (database forged)`, attack: 'T1554' };
    return { severity: 'critical', reason: `content differs from ${who}${verdict === 'mismatch' ? "'s own digest" : ''}, and the package did not change: tampering`, attack: 'T1554' };
  }
  if (owned?.conffile) return { severity: 'medium', reason: `config file of ${owned.owner.ecosystem} package ${owned.owner.name} edited` };
  if (isUnder(now.path, '/etc')) return { severity: 'medium' };
  if (isExecutable(now)) return { severity: 'high', reason: 'executable changed' };
  return { severity: 'low' };
}

function metadataSeverity(was: Manifest['files'][number], now: ObservedFile, owned: OwnedFile | undefined, pkgUnchanged: boolean, isMutable: boolean, changed: ReadonlySet<string>): Rated {
  if (isMutable) return { severity: 'info', reason: 'the policy declares this path mutable' };
  const wasMode = modeOf(was);
  const nowMode = modeOf(now);
  if (now.type === 'file' && (nowMode & SETID & ~wasMode) !== 0) return { severity: 'critical', reason: 'setuid/setgid bit added', attack: 'T1548.001' };
  if (now.type === 'file' && changed.has('capability') && now.capability !== undefined) {
    return { severity: 'critical', reason: `file capabilities ${was.capability ? 'changed' : 'added'}: ${capabilityText(now.capability)}`, attack: 'T1548' };
  }
  if ([...changed].every((f) => (LABEL_FIELDS as readonly string[]).includes(f))) return { severity: 'info', reason: 'security label changed; it counts only where the policy says so' };
  if ((nowMode & 0o002) !== 0 && (wasMode & 0o002) === 0 && now.type !== 'symlink') return { severity: 'high', reason: 'made world-writable', attack: 'T1222.002' };
  if (was.type !== now.type) return { severity: 'high', reason: `was a ${was.type}, now a ${now.type}` };
  if ((owned && !owned.conffile && pkgUnchanged) || isExecutable(now)) return { severity: 'high' };
  if (isUnder(now.path, '/etc')) return { severity: 'medium' };
  return { severity: 'low' };
}

/**
 * True when `comparePresent` finds nothing between the manifest's record and the path as it is:
 * the same content and every field `metadataChanges` looks at the same. Capabilities are
 * compared by `metadataChanges` only when either side has them.
 */
/**
 * True when `now` matches its record `was` on the differ's fast path, whatever the packages:
 * the walk may remember it as clean with the lstat it saw (an unreadable file keeps its warning).
 */
export function isKnownClean(was: FileRecord, now: ObservedFile): boolean {
  return now.unreadable === undefined && unchangedRecord(was, now);
}

function unchangedRecord(was: FileRecord, now: ObservedFile): boolean {
  if (was.type !== now.type || was.uid !== now.uid || was.gid !== now.gid || was.target !== now.target) return false;
  if (was.mode !== now.mode && was.type !== 'symlink') return false;
  if (was.type === 'file' && (was.sha256 === undefined || (now.unreadable === undefined && was.sha256 !== now.sha256))) return false;
  return was.capability === undefined && now.capability === undefined && was.selinux === now.selinux && was.ima === now.ima;
}

const METADATA_FIELDS = ['type', 'mode', 'uid', 'gid', 'target'] as const;
/** Recorded and shown, but drift only at info: the policy has no say over them yet. */
const LABEL_FIELDS = ['selinux', 'ima'] as const;

/** Mode, owner, type, link target and capabilities count; times, inode numbers and folder sizes do not. */
function metadataChanges(was: Manifest['files'][number], now: ObservedFile): { before: Record<string, string | number>; after: Record<string, string | number> } | null {
  const before: Record<string, string | number> = {};
  const after: Record<string, string | number> = {};
  const note = (field: string, a: string | number | undefined, b: string | number | undefined): void => {
    if (a === b) return;
    before[field] = a ?? '';
    after[field] = b ?? '';
  };
  for (const field of METADATA_FIELDS) {
    // A link's own mode is meaningless on Linux (always 0777); compare its target instead.
    if (field === 'mode' && was.type === 'symlink' && now.type === 'symlink') continue;
    note(field, was[field], now[field]);
  }
  note('capability', was.capability && capabilityText(was.capability), now.capability && capabilityText(now.capability));
  for (const field of LABEL_FIELDS) note(field, was[field], now[field]);
  return Object.keys(before).length > 0 ? { before, after } : null;
}

/**
 * update-alternatives links (`/usr/bin/nc -> /etc/alternatives/nc -> /bin/nc.openbsd`) are made
 * by a package's maintainer script: caused by the package the chain ends in, though not owned by it.
 */
function alternativesCause(now: ObservedFile, observed: ReadonlyMap<string, ObservedFile>, owned: ReadonlyMap<string, OwnedFile>): PackageRef | undefined {
  let path = now.path;
  let viaAlternatives = false;
  for (let hop = 0; hop < 4; hop++) {
    const link = observed.get(path);
    if (link?.type !== 'symlink' || link.target === undefined) break;
    path = resolveInTree(joinTarget(path, link.target), observed);
    viaAlternatives ||= isUnder(link.path, '/etc/alternatives') || isUnder(path, '/etc/alternatives');
  }
  return viaAlternatives && path !== now.path ? owned.get(path)?.owner : undefined;
}

function joinTarget(from: string, target: string): string {
  return target.startsWith('/') ? target : `${from.slice(0, from.lastIndexOf('/'))}/${target}`;
}

/** Normalises `..` and replaces folder links seen in the tree (`/bin -> usr/bin`) by their targets. */
function resolveInTree(path: string, observed: ReadonlyMap<string, ObservedFile>): string {
  const out: string[] = [];
  const parts = path.split('/');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      out.pop();
      continue;
    }
    out.push(part);
    const dir = observed.get(`/${out.join('/')}`);
    if (i < parts.length - 1 && dir?.type === 'symlink' && dir.target !== undefined) {
      const resolved = joinTarget(`/${out.join('/')}`, dir.target).split('/').filter((p) => p !== '' && p !== '.');
      out.length = 0;
      for (const r of resolved) r === '..' ? out.pop() : out.push(r);
    }
  }
  return `/${out.join('/')}`;
}
