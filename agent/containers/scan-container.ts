import { createHash } from 'node:crypto';
import { lstatSync } from 'node:fs';
import type { FileRecord, Manifest } from '../../shared/manifest.js';
import { MANIFEST_SCHEMA } from '../../shared/manifest.js';
import { maxSeverity } from '../../shared/findings.js';
import { normalizeImageRef } from '../../shared/image-ref.js';
import type { Policy } from '../../shared/policy.js';
import { summarize } from '../../shared/summary.js';
import type { ContainerReport, Finding, ScanWarning } from '../../shared/report.js';
import type { Collector } from '../collect/types.js';
import { diff, selectForVerification } from '../diff/differ.js';
import { collectPackages } from '../fingerprint/observe.js';
import type { CollectedAll } from '../fingerprint/observe.js';
import { changeSetsNamed } from '../diff/scan.js';
import { verifyAgainstPackages } from '../diff/verify.js';
import { checkImageLayers } from './image-seal.js';
import type { ImageSeal, SealCheck } from './image-seal.js';
import { LayerStack, ProbeCache, layeredRoot, layersDecide } from './layers.js';
import type { Layer } from './layers.js';
import { LayerAttrCache } from './layer-attr-cache.js';
import { currentSum, snapshotFolders } from './layer-gate.js';
import type { CachedImage } from './layer-attr-cache.js';
import { readOverlayAttrs } from './overlay-xattrs.js';
import type { OverlayAttrIndex } from './overlay-xattrs.js';
import { DigestCache, diffUpper } from './upper-diff.js';
import type { DiscoveredContainer } from './types.js';

/**
 * The image side of every container of one image: read once, shared by all of them (and kept in
 * the state folder); `accessed`/`listed` are what the collectors looked at in the image.
 */
type ImageView = CachedImage;

/**
 * What scanning many containers shares: the overlay attributes and lstat results of each layer
 * folder, the lower files' digests and each image's packages. A host with 200 containers of one
 * image reads that image once; each container then costs what its writable layer holds.
 */
export class ContainerScanContext {
  /** Replaced when an image layer's attributes are read again (its probes carry the old ones). */
  probes = new ProbeCache();
  readonly digests = new DigestCache();
  private readonly attrs = new Map<string, OverlayAttrIndex>();
  private readonly images = new Map<string, Promise<ImageView>>();
  private readonly checks = new Map<string, Promise<SealCheck>>();
  /** Manifests uploaded for images, by reference (normalized) and image id (see `uploadedFor`). */
  readonly uploaded = new Map<string, ImageSeal>();
  /** Upper layers' attributes read ahead for a whole host, used once each. */
  private readonly ahead = new Map<string, OverlayAttrIndex>();

  /** Each layer folder's folder sum this scan, shared by every image over it (layer-gate.ts). */
  private readonly sums = new Map<string, string>();
  /** When the full reads relied on by this scan's images were made (images read in full this scan are not in it). */
  private readonly partial: number[] = [];
  readonly fullCheckMs: number;
  private readonly now: () => number;

  constructor(
    readonly policy: Policy,
    readonly collectors?: readonly Collector[],
    readonly layerCache: LayerAttrCache = new LayerAttrCache(null),
    opts: { fullCheckMs?: number; now?: () => number } = {},
  ) {
    this.fullCheckMs = opts.fullCheckMs ?? FULL_CHECK_MS;
    this.now = opts.now ?? Date.now;
  }

  uploadedFor(image: { ref?: string; id?: string }): ImageSeal | undefined {
    return image.ref === undefined || image.id === undefined ? undefined : this.uploaded.get(uploadKey(image.ref, image.id));
  }

  /** Image layers whose attributes are neither known in this process nor in the state folder's cache. */
  private unknownLowers(lowers: readonly string[]): string[] {
    const out: string[] = [];
    for (const l of lowers) {
      if (this.attrs.has(l)) continue;
      const cached = this.layerCache.get(l);
      if (cached !== undefined) this.attrs.set(l, cached);
      else out.push(l);
    }
    return out;
  }

  private learn(lowers: readonly string[], parts: Map<string, OverlayAttrIndex>): void {
    for (const l of lowers) {
      this.attrs.set(l, parts.get(l)!);
      this.layerCache.set(l, parts.get(l)!);
    }
  }

  /**
   * Reads the overlay attributes of every container's layers of a host before the containers are
   * read (image layers not known yet included). They are read a moment before each container's
   * walk: a marker made in between is seen by the next scan.
   */
  async readAhead(containers: ReadonlyArray<{ upper: string; lowers: readonly string[] }>): Promise<string[]> {
    const lowers = this.unknownLowers([...new Set(containers.flatMap((c) => c.lowers))]);
    const uppers = containers.map((c) => c.upper);
    const { index, errors } = await readOverlayAttrs([...uppers, ...lowers]);
    const parts = splitByDir(index, [...uppers, ...lowers]);
    this.learn(lowers, parts);
    for (const u of uppers) this.ahead.set(u, parts.get(u)!);
    return errors;
  }

  /** Layers with their overlay attributes, read for those not read before. Uppers are read afresh. */
  async layersOf<U extends string | null>(upper: U, lowers: readonly string[]): Promise<{ upper: U extends string ? Layer : null; lowers: Layer[]; warnings: string[] }> {
    const early = upper === null ? undefined : this.ahead.get(upper);
    const fresh = this.unknownLowers(lowers);
    let errors: string[] = [];
    let upperAttrs: OverlayAttrIndex | undefined;
    if (upper !== null && early !== undefined && fresh.length === 0) {
      this.ahead.delete(upper);
      upperAttrs = early;
    } else if (upper !== null || fresh.length > 0) {
      const dirs = upper === null ? fresh : [upper, ...fresh];
      const read = await readOverlayAttrs(dirs);
      errors = read.errors;
      const parts = splitByDir(read.index, dirs);
      this.learn(fresh, parts);
      if (upper !== null) upperAttrs = parts.get(upper)!;
    }
    const up = (upper === null ? null : { dir: upper, attrs: upperAttrs! }) as U extends string ? Layer : null;
    return { upper: up, lowers: lowers.map((dir) => ({ dir, attrs: this.attrs.get(dir)! })), warnings: errors };
  }

  /**
   * The image's layers on this host against the image (its seal: first sight or uploaded), once
   * per image per scan. A full read (image-seal.ts: an lstat per image path, a hash per file whose
   * identity moved) runs at first sight, when the last one is older than `fullCheckMs`, when the
   * uploaded manifest changed, or when a folder of one of the layers moved (layer-gate.ts);
   * otherwise the last full read's drift stands, and the scan costs an lstat per layer folder,
   * not per path. When some file of a layer moved, the layers' overlay attributes are read again
   * before the check is trusted: a marker added to an image layer hides or redirects paths.
   */
  checkImage(dirs: readonly string[], uploaded?: ImageSeal): Promise<SealCheck> {
    const key = dirs.join('\u0000');
    let check = this.checks.get(key);
    if (check === undefined) {
      check = (async () => {
        if (dirs.length === 0) return { drift: new Map(), moved: false, bytesHashed: 0, seal: { source: 'first-sight' as const, files: new Map(), stats: new Map() } };
        const now = this.now();
        const last = this.layerCache.getCheck(dirs);
        // With no manifest had this time, the seal kept is what the last full read was held to.
        const upload = uploaded === undefined ? last?.uploaded : sealDigest(uploaded);
        if (last !== undefined && now - last.at < this.fullCheckMs && last.uploaded === upload && dirs.every((d, i) => this.folderSum(d) === last.sums[i])) {
          this.partial.push(last.at);
          return { drift: new Map(last.drift), moved: false, bytesHashed: 0, seal: { source: last.source, files: new Map(), ...(uploaded?.packages ? { packages: uploaded.packages } : last.source === 'uploaded' ? { packages: this.layerCache.getSeal(dirs)?.packages ?? [] } : {}), stats: new Map() } };
        }
        // Listed before the full read: a change made during it moves a folder the next scan checks.
        const folders = dirs.map((d) => snapshotFolders(d, now));
        const kept = this.layerCache.getSeal(dirs);
        // An uploaded manifest is the image's truth; what the host files' digests were is kept.
        const stored = uploaded === undefined ? kept : { ...uploaded, stats: kept?.stats ?? new Map() };
        const stackOf = async (): Promise<LayerStack> => new LayerStack((await this.layersOf(null, dirs)).lowers, this.probes);
        let got = checkImageLayers(await stackOf(), this.policy, stored, now);
        if (got.moved && stored !== undefined) {
          for (const d of dirs) {
            this.attrs.delete(d);
            this.layerCache.forget(d);
          }
          this.probes = new ProbeCache();
          const again = checkImageLayers(await stackOf(), this.policy, { ...stored, stats: got.seal.stats }, now);
          got = { ...again, bytesHashed: got.bytesHashed + again.bytesHashed };
        }
        this.layerCache.setSeal(dirs, got.seal);
        dirs.forEach((d, i) => {
          this.layerCache.setFolders(d, folders[i]!);
          this.sums.set(d, folders[i]?.sum ?? '');
        });
        // A layer that could not be listed whole is read in full every scan: no check is kept for it.
        const sums = folders.map((f) => f?.sum ?? '');
        this.layerCache.setCheck(dirs, sums.includes('') ? null : { at: now, source: got.seal.source, ...(upload !== undefined ? { uploaded: upload } : {}), sums, drift: [...got.drift] });
        return got;
      })();
      this.checks.set(key, check);
    }
    return check;
  }

  /** A layer's folders as they are now, summed once per scan (layer-gate.ts); '' when none were listed. */
  private folderSum(dir: string): string {
    let sum = this.sums.get(dir);
    if (sum === undefined) {
      const rec = this.layerCache.getFolders(dir);
      sum = rec === undefined ? '' : currentSum(dir, rec);
      this.sums.set(dir, sum);
    }
    return sum;
  }

  /** When the oldest full read of the image layers this scan relied on was made; undefined when every image was read in full. */
  oldestFullCheck(): number | undefined {
    return this.partial.length === 0 ? undefined : Math.min(...this.partial);
  }

  imageView(lowers: readonly Layer[]): Promise<ImageView> {
    const key = lowers.map((l) => l.dir).join('\u0000');
    let view = this.images.get(key);
    if (view === undefined) {
      view = (async () => {
        const dirs = lowers.map((l) => l.dir);
        const kept = this.layerCache.getImage(dirs);
        if (kept !== undefined) return kept;
        const stack = new LayerStack(lowers, this.probes);
        stack.recordAccess();
        const packages = await collectPackages(layeredRoot(stack, 'image'), this.collectors);
        const read = { packages, accessed: stack.accessed!, listed: stack.listed! };
        // An image whose package databases could not all be read is read again next time.
        if (!packages.warnings.some((w) => w.code === 'COLLECTOR_FAILED')) this.layerCache.setImage(dirs, read);
        return read;
      })();
      this.images.set(key, view);
    }
    return view;
  }
}

/** How often an image's layers are read in full by default (every path; see layer-gate.ts for what is checked in between). */
export const FULL_CHECK_MS = 24 * 3600 * 1000;

/** Which uploaded manifest a check was held to. */
function sealDigest(seal: ImageSeal): string {
  const h = createHash('sha256');
  for (const f of seal.files.values()) h.update(JSON.stringify(f));
  h.update(JSON.stringify(seal.packages ?? null));
  return h.digest('hex');
}

export const uploadKey = (ref: string, id: string): string => `${normalizeImageRef(ref)}\u0000${id}`;

/** The attributes of each of `dirs` (no one of them inside another), by the folder they are in. */
function splitByDir(index: OverlayAttrIndex, dirs: readonly string[]): Map<string, OverlayAttrIndex> {
  const out = new Map<string, OverlayAttrIndex>(dirs.map((d) => [d, new Map()]));
  for (const [p, a] of index) {
    // Layer folders end in `/diff` or `/fs`: the owner is found by cutting the path back.
    for (let cut = p; cut.length > 1; cut = cut.slice(0, cut.lastIndexOf('/')) || '/') {
      const own = out.get(cut);
      if (own !== undefined) {
        own.set(p, a);
        break;
      }
    }
  }
  return out;
}

/**
 * One container's drift from its image, read from the host: its writable layer compared path by
 * path with the image's layers, and its package databases (read through the layers, never a
 * mount) compared with the image's. Never writes, mounts or executes anything in the container.
 */
export async function scanContainer(c: DiscoveredContainer, ctx: ContainerScanContext): Promise<ContainerReport> {
  const t0 = performance.now();
  const ident = { runtime: c.runtime, id: c.id, ...(c.name ? { name: c.name } : {}), image: { ...(c.image.ref ? { ref: c.image.ref } : {}), ...(c.image.id ? { id: c.image.id } : {}) } };
  if (!exists(c.upper)) return goneReport(ident, c.upper, c.warnings ?? []);
  // First, so that a layer whose attributes must be read again is read again for this container too.
  const layerCheck = await ctx.checkImage(c.imageLowers, ctx.uploadedFor(c.image));
  const { upper, lowers, warnings: attrErrors } = await ctx.layersOf(c.upper, c.lowers);
  const imageLowers = lowers.filter((l) => c.imageLowers.includes(l.dir));
  const image = await ctx.imageView(imageLowers);
  const lowerStack = new LayerStack(lowers, ctx.probes);
  const changes = diffUpper(upper, lowerStack, { policy: ctx.policy, digests: ctx.digests });
  // Removed while it was walked: what was read of it is no container's state any more.
  if (!exists(c.upper)) return goneReport(ident, c.upper, c.warnings ?? []);
  if (!changes.readable) {
    // There but unreadable: nothing is known of it this time, which is not "clean".
    return { ...ident, state: 'unknown', summary: summarize([]), findings: [], warnings: [...(c.warnings ?? []), ...changes.warnings] };
  }

  // Where the image's layers on this host are not the image (changed after first sight, or not
  // what was uploaded), the image's record is what the container is compared with, and what the
  // layers show now is the container's, unless its own layers (writable, Docker's init) decide.
  const own = [upper, ...lowers.filter((l) => !c.imageLowers.includes(l.dir))];
  const layerDrift = [...layerCheck.drift].filter(([p]) => !layersDecide(own, p, ctx.probes));
  const ownLowers = own.slice(1);
  const expected = changes.expected.flatMap((f) => {
    const d = layerCheck.drift.get(f.path);
    if (d === undefined || layersDecide(ownLowers, f.path, ctx.probes)) return [f];
    return d.expected ? [d.expected] : [];
  });
  for (const [, d] of layerDrift) if (d.expected) expected.push(d.expected);
  const observed = [...changes.observed, ...layerDrift.flatMap(([, d]) => (d.observed ? [d.observed] : []))];
  const touched = [...changes.touched, ...layerDrift.map(([p]) => p)];

  const mergedRoot = layeredRoot(new LayerStack([upper, ...lowers], ctx.probes), 'container');
  // The container's package databases are read again only when its layer changed what the
  // collectors read in the image: otherwise they are the image's (the common, cheap case).
  const packages = touched.some((p) => affectsCollectors(p, image)) ? await collectPackages(mergedRoot, ctx.collectors) : image.packages;

  const manifest: Manifest = {
    schema: MANIFEST_SCHEMA,
    image: { name: c.image.ref ?? c.image.id ?? 'unknown', version: c.image.id ?? 'unknown', createdAt: new Date(0).toISOString(), source: 'root' },
    policy: ctx.policy,
    packages: layerCheck.seal.packages ?? image.packages.packages,
    files: expected.map((f) => withOwner(f, image.packages)),
  };
  // The differ reads a manifest without file records as package-only: one record equal on both
  // sides (the root folder, as the upper layer holds it) keeps it comparing files.
  const anchor: FileRecord = { path: '/', type: 'dir', mode: '0755', uid: 0, gid: 0 };
  manifest.files.push(anchor);
  const obs = { packages: packages.packages, files: [...observed, anchor], owned: packages.owned, changeSets: packages.changeSets };
  const verdicts = await verifyAgainstPackages(mergedRoot, selectForVerification(manifest, obs), packages.owned);
  const findings = markLayerDrift(raiseAddedExecutables(diff(manifest, obs, verdicts)), new Set(layerDrift.map(([p]) => p)), layerCheck.seal.source);
  const warnings: ScanWarning[] = [
    ...(c.warnings ?? []),
    ...attrErrors.map((message) => ({ code: 'CONTAINER_XATTRS_UNREADABLE', path: c.upper, message })),
    ...changes.warnings,
    ...(packages === image.packages ? [] : packages.warnings),
  ];
  const changeSets = changeSetsNamed(findings, packages.changeSets);
  return {
    ...ident,
    state: c.state,
    summary: summarize(findings),
    findings,
    ...(changeSets.length > 0 ? { changeSets } : {}),
    warnings: warnings.slice(0, 10_000),
    stats: { entries: changes.stats.entries, bytesRead: changes.stats.bytesHashed, durationMs: Math.round(performance.now() - t0) },
  };
}

/**
 * Whether an upper-layer path changes what the collectors read in the image: a path they read or
 * listed, an entry of a folder they listed, or a whiteout/opaque/new folder above what they read.
 */
function affectsCollectors(p: string, image: ImageView): boolean {
  if (image.accessed.has(p) || image.listed.has(p)) return true;
  if (image.listed.has(p.slice(0, p.lastIndexOf('/')) || '/')) return true;
  const prefix = `${p}/`;
  for (const a of image.accessed) if (a.startsWith(prefix)) return true;
  for (const a of image.listed) if (a.startsWith(prefix)) return true;
  return false;
}

/** An image file the package databases say a package installed: a removed package's files nest under it. */
function withOwner(f: FileRecord, pkgs: CollectedAll): FileRecord {
  const owner = pkgs.owned.get(f.path)?.owner;
  return owner ? { ...f, owner } : f;
}

/**
 * An executable that is not in the image is the strongest sign of a mutated container (nobody
 * should ever add a program to a running container): critical wherever it sits, inside a
 * package's finding or on its own; the package finding takes the highest severity below it.
 */
export function raiseAddedExecutables(findings: Finding[]): Finding[] {
  const raise = (f: Finding): Finding => {
    const changes = f.changes?.map(raise);
    let severity = f.severity;
    let reason = f.reason;
    if (f.kind === 'file-added' && f.severity !== 'info' && (reason === 'new executable in a system path' || reason === 'new setuid/setgid file')) {
      severity = 'critical';
      reason = reason === 'new setuid/setgid file' ? reason : 'executable not in the container image';
    }
    for (const ch of changes ?? []) severity = maxSeverity(severity, ch.severity);
    return { ...f, severity, ...(reason !== undefined ? { reason } : {}), ...(changes ? { changes } : {}) };
  };
  return findings.map(raise).sort((a, b) => order(a) - order(b));
}

/**
 * A finding on a path the container left alone, there because the image's layers on this host
 * changed under it: someone wrote in an image layer, which every container of the image shows.
 * Said so, and never below high.
 */
function markLayerDrift(findings: Finding[], paths: ReadonlySet<string>, source: ImageSeal['source']): Finding[] {
  if (paths.size === 0) return findings;
  const reason = source === 'uploaded' ? 'the image layers on this host differ from the manifest uploaded for the image' : 'the image layers on this host changed since the image was first read';
  const mark = (f: Finding): Finding => {
    const changes = f.changes?.map(mark);
    const own = f.path !== undefined && paths.has(f.path) && f.severity !== 'info';
    let severity = own ? maxSeverity(f.severity, 'high') : f.severity;
    for (const ch of changes ?? []) severity = maxSeverity(severity, ch.severity);
    return { ...f, severity, ...(own ? { reason: f.reason === 'executable not in the container image' ? `${f.reason}: ${reason}` : reason } : {}), ...(changes ? { changes } : {}) };
  };
  return findings.map(mark).sort((a, b) => order(a) - order(b));
}

const RANK = { critical: 0, high: 1, medium: 2, low: 3, info: 4 } as const;
const order = (f: Finding): number => RANK[f.severity];

function goneReport(ident: Omit<ContainerReport, 'state' | 'summary' | 'findings' | 'warnings'>, upper: string, warnings: ScanWarning[]): ContainerReport {
  return { ...ident, state: 'gone', summary: summarize([]), findings: [], warnings: [...warnings, { code: 'CONTAINER_GONE', path: upper, message: 'the container was removed while it was scanned' }] };
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
