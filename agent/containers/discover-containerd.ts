import { lstat } from 'node:fs/promises';
import path from 'node:path';
import type { ScanWarning } from '../../shared/report.js';
import { readSmall } from './overlay-dirs.js';
import type { DiscoveredContainer, Discovery } from './types.js';

/**
 * containerd's overlayfs snapshotter keeps each snapshot in
 * `io.containerd.snapshotter.v1.overlayfs/snapshots/<n>/fs` and which snapshot is whose (parents,
 * keys = container ids in namespaces such as `moby` for Docker's containerd image store or
 * `k8s.io`) in `metadata.db`, a bbolt database. This agent does not read bbolt: a running
 * container is found through the host's mount table instead, where the kernel names each overlay
 * mount's `upperdir=` and `lowerdir=` (proc(5) mountinfo: fields up to ` - `, then fstype,
 * source and the super options). A *stopped* containerd container has no mount and is therefore
 * not discovered: that needs metadata.db.
 * The container id is taken from where the rootfs is mounted: containerd's runtime v2 shim mounts
 * it at `…/io.containerd.runtime.v2.task/<namespace>/<id>/rootfs`; Docker with the containerd
 * image store at `…/docker/rootfs/overlayfs/<id>`.
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

/**
 * Running containers on containerd snapshots, from `proc/1/mountinfo` under the host root (the
 * init process's mount namespace: the runtimes' mounts are there). Paths in it are the host's,
 * so they are taken relative to `rootDir`.
 */
export async function discoverContainerd(rootDir: string, mountinfo = 'proc/1/mountinfo'): Promise<Discovery> {
  const file = path.join(rootDir, mountinfo);
  const warnings: ScanWarning[] = [];
  let text: string | null;
  try {
    text = await readSmall(file, 64 * 1024 * 1024);
  } catch (err) {
    return { containers: [], warnings: [{ code: 'CONTAINER_METADATA_INVALID', path: file, message: (err as Error).message }] };
  }
  if (text === null) return { containers: [], warnings };
  const containers: DiscoveredContainer[] = [];
  for (const m of parseOverlayMounts(text)) {
    if (!SNAPSHOTS.test(m.upper)) continue;
    const task = TASK.exec(m.mountPoint);
    const docker = DOCKER_ROOTFS.exec(m.mountPoint);
    if (!task && !docker) continue;
    const host = (p: string): string => path.join(rootDir, p);
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
      warnings: [{ code: 'CONTAINER_IMAGE_UNKNOWN', path: m.mountPoint, message: "found through the mount table: the image's name is in containerd's metadata.db, which this agent does not read" }],
    });
  }
  return { containers, warnings };
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await lstat(p)).isFile();
  } catch {
    return false;
  }
}
