import { open } from 'node:fs/promises';
import path from 'node:path';
import type { ScanWarning } from '../../shared/report.js';
import { BoltError, BoltFile, uvarint } from './bbolt.js';

/**
 * What containerd's two bbolt databases say of containers and their snapshots (containerd
 * core/metadata/buckets.go, core/metadata/snapshot.go, core/snapshots/storage/bolt.go,
 * plugins/snapshots/overlay/overlay.go):
 *
 * `io.containerd.metadata.v1.bolt/meta.db`, one bucket per namespace under `v1`:
 *   v1/<namespace>/containers/<container id>/{image, snapshotter, snapshotKey, labels/, spec, …}
 *   v1/<namespace>/images/<name>/target/{digest, mediatype, size}
 *   v1/<namespace>/snapshots/<snapshotter>/<snapshot key>/{name, parent, children/, labels/}
 * where `name` is the snapshot's key in the snapshotter's own database, `<namespace>/<n>/<key>`
 * (metadata.createKey), and `parent` the parent's key in the same namespace. Docker with the
 * containerd image store (Docker ≥ 29) uses namespace `moby`: a container's snapshot key is its
 * container id, its parent `<id>-init` (Docker's own files), then the image's top layer (moby
 * daemon/containerd/image_snapshot.go); Kubernetes' CRI uses `k8s.io`.
 *
 * `io.containerd.snapshotter.v1.overlayfs/metadata.db`:
 *   v1/snapshots/<backend key>/{id: uvarint, kind: 1 byte, parent: <backend key>, inodes, size, …}
 *   v1/parents/<uvarint parent id>\0<uvarint child id> (an index, not needed here)
 * Kind 1 view, 2 active (a container's writable snapshot), 3 committed (an image layer). The
 * snapshot's folder is `snapshots/<id>/fs`; overlay mounts it as upperdir over its parents'
 * folders, nearest parent first (overlay.go `mounts`).
 *
 * containerd keeps both files locked while it runs (a bbolt flock) and writes pages in place, so
 * each is read once into memory and parsed from that copy.
 */
export const CONTAINERD_HOME = 'var/lib/containerd';
const META_DB = 'io.containerd.metadata.v1.bolt/meta.db';
const SNAPSHOTTER = 'io.containerd.snapshotter.v1.overlayfs';
/** The only snapshotter whose folders are overlay layers this agent reads. */
export const OVERLAY_SNAPSHOTTER = 'overlayfs';
const MAX_DB_BYTES = 1 << 30;
/** Overlayfs stacks at most 500 lower layers (fs/overlayfs OVL_MAX_STACK). */
const MAX_CHAIN = 500;
const KINDS = { 1: 'view', 2: 'active', 3: 'committed' } as const;

export interface ContainerdContainer {
  namespace: string;
  id: string;
  /** The image name it was created from, and that image's target digest when still known. */
  image?: string;
  imageDigest?: string;
  snapshotter?: string;
  snapshotKey?: string;
}

export interface SnapshotChain {
  /** The snapshot's own folder (the writable layer of an active snapshot). */
  upper: string;
  /** The parents' folders, nearest first, and their snapshot keys (backend keys, `<ns>/<n>/<key>`). */
  lowers: string[];
  lowerKeys: string[];
  kind: 'view' | 'active' | 'committed' | 'unknown';
}

export class ContainerdStore {
  constructor(
    private readonly meta: BoltFile,
    private readonly snapshots: BoltFile | null,
    /** Host path of the overlayfs snapshotter's `snapshots` folder. */
    private readonly snapshotsDir: string,
  ) {}

  get metaFile(): string {
    return this.meta.name;
  }

  /** Every container of every namespace. A namespace that cannot be read is a warning. */
  containers(): { containers: ContainerdContainer[]; warnings: ScanWarning[] } {
    const out: ContainerdContainer[] = [];
    const warnings: ScanWarning[] = [];
    const v1 = this.read(() => this.meta.root().bucket('v1'), warnings, this.meta.name);
    if (v1 === undefined) return { containers: out, warnings };
    for (const ns of this.read(() => v1.bucketNames(), warnings, this.meta.name) ?? []) {
      this.read(
        () => {
          const space = v1.bucket(ns)!;
          const images = space.bucket('images');
          for (const id of space.bucket('containers')?.bucketNames() ?? []) {
            const c = space.bucket('containers')!.bucket(id)!;
            const image = text(c.get('image'));
            const digest = image === undefined ? undefined : text(images?.bucket(image)?.bucket('target')?.get('digest'));
            const snapshotter = text(c.get('snapshotter'));
            const snapshotKey = text(c.get('snapshotKey'));
            out.push({ namespace: ns, id, ...(image ? { image } : {}), ...(digest ? { imageDigest: digest } : {}), ...(snapshotter ? { snapshotter } : {}), ...(snapshotKey ? { snapshotKey } : {}) });
          }
        },
        warnings,
        `${this.meta.name} namespace ${ns}`,
      );
    }
    return { containers: out, warnings };
  }

  /** The folders of snapshot `key` of `snapshotter` in namespace `ns`; an Error says why not. */
  chain(ns: string, snapshotter: string, key: string): SnapshotChain | Error {
    if (snapshotter !== OVERLAY_SNAPSHOTTER) return new Error(`snapshotter ${snapshotter} is not overlayfs: its snapshots are not read`);
    if (this.snapshots === null) return new Error(`${SNAPSHOTTER}/metadata.db cannot be read`);
    try {
      const name = text(this.meta.root().bucket('v1')?.bucket(ns)?.bucket('snapshots')?.bucket(snapshotter)?.bucket(key)?.get('name'));
      if (name === undefined) return new Error(`snapshot ${key} is not in namespace ${ns} of ${this.meta.name}`);
      const all = this.snapshots.root().bucket('v1')?.bucket('snapshots');
      if (all === undefined) return new Error(`${this.snapshots.name} has no v1/snapshots bucket`);
      const dirs: string[] = [];
      const keys: string[] = [];
      let kind: SnapshotChain['kind'] = 'unknown';
      const seen = new Set<string>();
      for (let at: string | undefined = name; at !== undefined; ) {
        if (seen.has(at) || seen.size > MAX_CHAIN) return new Error(`snapshot ${name}'s parents ${seen.has(at) ? 'loop back to' : 'go on past'} ${at}`);
        seen.add(at);
        const s = all.bucket(at);
        if (s === undefined) return new Error(`snapshot ${at} (of ${name}) is not in ${this.snapshots.name}`);
        const id = uvarint(s.get('id'));
        if (id === null || id === 0) return new Error(`snapshot ${at} in ${this.snapshots.name} has no id`);
        if (dirs.length === 0) kind = KINDS[(s.get('kind')?.[0] ?? 0) as 1 | 2 | 3] ?? 'unknown';
        else keys.push(at);
        dirs.push(path.join(this.snapshotsDir, String(id), 'fs'));
        at = text(s.get('parent'));
      }
      return { upper: dirs[0]!, lowers: dirs.slice(1), lowerKeys: keys, kind };
    } catch (err) {
      if (err instanceof BoltError) return err;
      throw err;
    }
  }

  private read<T>(fn: () => T, warnings: ScanWarning[], where: string): T | undefined {
    try {
      return fn();
    } catch (err) {
      if (!(err instanceof BoltError)) throw err;
      warnings.push({ code: 'CONTAINER_METADATA_INVALID', path: where, message: err.message });
      return undefined;
    }
  }
}

/** A short UTF-8 value (names, keys, digests); longer or absent is undefined. */
function text(b: Buffer | undefined): string | undefined {
  if (b === undefined || b.length === 0 || b.length > 1024) return undefined;
  return b.toString('utf8');
}

/**
 * Opens containerd's databases under `rootDir` (null when containerd has none there). A file
 * that cannot be read or parsed is a warning, and the store is null when it is meta.db.
 */
export interface OpenedContainerd {
  store: ContainerdStore | null;
  warnings: ScanWarning[];
}

export async function openContainerd(rootDir: string, home = CONTAINERD_HOME): Promise<OpenedContainerd> {
  const warnings: ScanWarning[] = [];
  const load = async (rel: string): Promise<BoltFile | null> => {
    const file = path.join(rootDir, home, rel);
    try {
      const buf = await readWhole(file);
      return buf === null ? null : new BoltFile(buf, file);
    } catch (err) {
      warnings.push({ code: 'CONTAINER_METADATA_INVALID', path: file, message: (err as Error).message });
      return null;
    }
  };
  const meta = await load(META_DB);
  if (meta === null) return { store: null, warnings };
  const snapshots = await load(`${SNAPSHOTTER}/metadata.db`);
  return { store: new ContainerdStore(meta, snapshots, path.join(rootDir, home, SNAPSHOTTER, 'snapshots')), warnings };
}

/** A database's bytes, read through one descriptor (the size as seen when opened); null when absent. */
async function readWhole(file: string): Promise<Buffer | null> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_DB_BYTES) throw new Error(`${st.size} bytes, more than the ${MAX_DB_BYTES} a containerd database is read up to`);
    const buf = Buffer.alloc(st.size);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } finally {
    await fh.close();
  }
}

