import { lstat } from 'node:fs/promises';
import path from 'node:path';
import type { ScanWarning } from '../../shared/report.js';
import { readSmall } from './overlay-dirs.js';
import type { DiscoveredContainer, Discovery } from './types.js';
import { OVERLAY_SNAPSHOTTER } from './containerd-store.js';
import type { ContainerdStore, OpenedContainerd } from './containerd-store.js';

/**
 * containerd's containers, running and stopped, from its metadata databases (containerd-store.ts:
 * container → snapshot key → snapshot folders, image name and digest), in every namespace but
 * Docker's `moby` (Docker's own containers are read from its config.v2.json, discover-docker.ts).
 * Whether one runs is told by the host's mount table, where the kernel names each overlay mount's
 * `upperdir=` and `lowerdir=` (proc(5) mountinfo: fields up to ` - `, then fstype, source and the
 * super options): containerd's runtime v2 shim mounts a container's rootfs at
 * `…/io.containerd.runtime.v2.task/<namespace>/<id>/rootfs`, Docker with the containerd image
 * store at `…/docker/rootfs/overlayfs/<id>`. A running container the databases do not name (they
 * could not be read) is still found through its mount, without its image.
 */
export interface OverlayMount {
  mountPoint: string;
  upper: string;
  lowers: string[];
}

/** The overlay mounts of one mountinfo text. Pure. */
export function parseOverlayMounts(text: string): OverlayMount[] {
  const out: OverlayMount[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep === -1) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    if (right[0] !== 'overlay' || left.length < 5) continue;
    const opts = splitOptions(right[2] ?? '');
    let upper: string | undefined;
    const lowers: string[] = [];
    for (const o of opts) {
      const eq = o.indexOf('=');
      const key = o.slice(0, eq);
      const value = unescapeMount(o.slice(eq + 1));
      if (key === 'upperdir') upper = value;
      // `lowerdir=a:b` (mount(2)) or one `lowerdir+=` per layer (the fsconfig API, Linux 6.8+).
      else if (key === 'lowerdir') lowers.push(...splitLowers(o.slice(eq + 1)).map(unescapeMount));
      else if (key === 'lowerdir+') lowers.push(value);
    }
    if (upper === undefined) continue;
    out.push({ mountPoint: unescapeMount(left[4]!), upper, lowers });
  }
  return out;
}

/** Super options are comma-separated; the kernel escapes a comma inside a path as `\,` (seq_show_option). */
function splitOptions(s: string): string[] {
  return s.split(/(?<!\\),/);
}

/** `:` inside a lower path is escaped as `\:`. */
function splitLowers(s: string): string[] {
  return s.split(/(?<!\\):/).map((p) => p.replace(/\\:/g, ':').replace(/\\,/g, ','));
}

/** mountinfo escapes space, tab, newline and backslash as `\ooo`. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))).replace(/\\,/g, ',');
}

const SNAPSHOTS = /\/io\.containerd\.snapshotter\.v1\.overlayfs\/snapshots\/[0-9]+\/fs$/;
const TASK = /\/io\.containerd\.runtime\.v2\.task\/([^/]+)\/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})\/rootfs$/;
const DOCKER_ROOTFS = /\/rootfs\/overlayfs\/([0-9a-f]{12,128})$/;
/** containerd's identifiers (pkg/identifiers): what a report may carry as a container id. */
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,75}$/;
/** Docker's namespace in containerd (moby daemon: the `containerd-namespace` default). */
export const DOCKER_NAMESPACE = 'moby';

/**
 * containerd's containers under `rootDir`, from its databases and from `proc/1/mountinfo` (the
 * init process's mount namespace, where the runtimes' mounts are; its paths are the host's, so
 * they are taken relative to `rootDir`).
 */
export async function discoverContainerd(rootDir: string, containerd: OpenedContainerd, mountinfo = 'proc/1/mountinfo'): Promise<Discovery> {
  const file = path.join(rootDir, mountinfo);
  const warnings: ScanWarning[] = [...containerd.warnings];
  let text: string | null = null;
  try {
    text = await readSmall(file, 64 * 1024 * 1024);
  } catch (err) {
    warnings.push({ code: 'CONTAINER_METADATA_INVALID', path: file, message: (err as Error).message });
  }
  const host = (p: string): string => path.join(rootDir, p);
  const mounts = text === null ? [] : parseOverlayMounts(text).filter((m) => SNAPSHOTS.test(m.upper));
  const running = new Map<string, OverlayMount>();
  for (const m of mounts) {
    const task = TASK.exec(m.mountPoint);
    if (task) running.set(`${task[1]}/${task[2]}`, m);
  }

  const containers: DiscoveredContainer[] = [];
  const known = new Set<string>();
  if (containerd.store !== null) {
    const listed = containerd.store.containers();
    warnings.push(...listed.warnings);
    for (const r of listed.containers) {
      if (r.namespace === DOCKER_NAMESPACE) continue;
      const name = `${r.namespace}/${r.id}`;
      if (!CONTAINER_ID.test(r.id)) {
        warnings.push({ code: 'CONTAINER_METADATA_INVALID', path: containerd.store.metaFile, message: `containerd container ${JSON.stringify(name.slice(0, 200))} has an id containerd would not make: skipped` });
        continue;
      }
      const chain = containerd.store.chain(r.namespace, r.snapshotter ?? OVERLAY_SNAPSHOTTER, r.snapshotKey ?? r.id);
      if (chain instanceof Error) {
        warnings.push({ code: 'CONTAINER_METADATA_MISSING', path: containerd.store.metaFile, message: `containerd container ${name}: ${chain.message}: skipped` });
        continue;
      }
      known.add(name);
      containers.push({
        runtime: 'containerd',
        id: r.id,
        name,
        image: { ...(r.image ? { ref: r.image } : {}), ...(r.imageDigest ? { id: r.imageDigest } : {}) },
        state: running.has(name) ? 'running' : 'stopped',
        upper: chain.upper,
        lowers: chain.lowers,
        imageLowers: chain.lowers,
      });
    }
  }

  for (const m of mounts) {
    const task = TASK.exec(m.mountPoint);
    const docker = DOCKER_ROOTFS.exec(m.mountPoint);
    if (!task && !docker) continue;
    if (task && known.has(`${task[1]}/${task[2]}`)) continue;
    const lowers = m.lowers.map(host);
    // Docker's init snapshot (its /etc/hosts, /.dockerenv…) is the container's nearest parent:
    // not part of the image, so not shared by the image's other containers.
    const init = docker && lowers[0] !== undefined && (await isFile(path.join(lowers[0], '.dockerenv')));
    containers.push({
      runtime: docker ? 'docker' : 'containerd',
      id: docker ? docker[1]! : task![2]!,
      ...(task ? { name: `${task[1]}/${task[2]}` } : {}),
      image: {},
      state: 'running',
      upper: host(m.upper),
      lowers,
      imageLowers: init ? lowers.slice(1) : lowers,
      warnings: [{ code: 'CONTAINER_IMAGE_UNKNOWN', path: m.mountPoint, message: `found through the mount table only: containerd's meta.db ${containerd.store === null ? 'could not be read' : 'does not name it'}, which names the image` }],
    });
  }
  return { containers, warnings };
}

/**
 * A container of Docker's containerd image store: its snapshot (key = container id in namespace
 * `moby`) and parents; Docker's init snapshot `<id>-init` is the container's own, not the image's.
 */
export function dockerSnapshot(store: ContainerdStore, id: string, snapshotter: string): Pick<DiscoveredContainer, 'upper' | 'lowers' | 'imageLowers'> | Error {
  const chain = store.chain(DOCKER_NAMESPACE, snapshotter, id);
  if (chain instanceof Error) return chain;
  return { upper: chain.upper, lowers: chain.lowers, imageLowers: chain.lowers.filter((_, i) => !chain.lowerKeys[i]!.endsWith(`/${id}-init`)) };
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await lstat(p)).isFile();
  } catch {
    return false;
  }
}
