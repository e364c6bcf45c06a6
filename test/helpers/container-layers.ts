// Container layers made by the kernel: real overlay mounts over a cached debootstrap tree, mutated
// through the merged view with real tools, unmounted, and laid out on disk as Docker's overlay2
// driver, containers/storage (Podman) and containerd's overlayfs snapshotter lay them out, with
// their metadata files in the formats their sources define (see agent/containers/discover-*.ts).
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Finding } from '../../shared/report.js';
import { CACHE_DIR, aptInChroot, ensureWithLanguages } from './debian-root.js';

/** A finding in one line, as the container tests compare them: kind, severity, path or package. */
export const brief = (f: Finding): string => [f.kind, f.severity, f.path ?? `${f.ecosystem}:${f.name}`].join(' ');

// Bump when the way the image layers are built changes.
const LAYERS_VERSION = 'c1';

/**
 * A two-layer image: the bottom layer is the cached "languages" Debian tree (hard-linked once,
 * when this cache is built, never by a test run: tests bind the layers read-only; overlay
 * never writes a lower layer), the top one a real `apt-get install netcat-openbsd` run through an
 * overlay mount over it, plus a file deleted (a kernel-made whiteout) and a folder emptied and
 * refilled (a kernel-made opaque folder) — so the image's own layers carry both markers.
 */
export function ensureImageLayers(): { bottom: string; top: string } {
  const dir = path.join(CACHE_DIR, `container-image-${LAYERS_VERSION}`);
  const out = { bottom: path.join(dir, 'layer1'), top: path.join(dir, 'layer2') };
  if (existsSync(dir)) return out;
  const langs = ensureWithLanguages();
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    execFileSync('cp', ['-al', langs, path.join(tmp, 'layer1')]);
    const m = overlayMount(tmp, [path.join(tmp, 'layer1')], path.join(tmp, 'layer2'));
    try {
      aptInChroot(m.merged, ['install', '-y', '-q', '--no-install-recommends', 'netcat-openbsd']);
      rmSync(path.join(m.merged, 'etc/issue.net'));
      rmSync(path.join(m.merged, 'usr/share/doc/less'), { recursive: true });
      mkdirSync(path.join(m.merged, 'usr/share/doc/less'));
      writeFileSync(path.join(m.merged, 'usr/share/doc/less/README.slim'), 'docs removed from this image\n');
    } finally {
      m.unmount();
    }
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    if (existsSync(dir)) return out;
    throw err;
  }
  return out;
}

export interface Mounted {
  merged: string;
  unmount: () => void;
}

/**
 * Puts a cached image layer at `dst` without touching its inodes: a read-only bind mount. A hard-
 * linked copy (`cp -al`) would move the ctime of every cached file, which other suites read, and
 * a test writing in a layer by mistake would write in the cache; through a read-only mount it
 * fails instead. A layer a test means to change is copied (`copyLayer`). `scratchDir().remove()`
 * unmounts what is mounted below it before it deletes anything.
 */
export function bindReadOnly(src: string, dst: string): void {
  mkdirSync(dst, { recursive: true });
  execFileSync('mount', ['--bind', src, dst]);
  try {
    execFileSync('mount', ['-o', 'remount,bind,ro', dst]);
  } catch (err) {
    execFileSync('umount', [dst]);
    throw err;
  }
}

/** A real copy of a layer (new inodes), for a test that changes an image layer. */
export function copyLayer(src: string, dst: string): void {
  execFileSync('cp', ['-a', src, dst]);
}

/** Unmounts every mount below `dir`, deepest first (mountinfo escapes space, tab, newline and backslash as `\ooo`). */
function unmountUnder(dir: string): void {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const p of points) execFileSync('umount', [p]);
}

/** `mount -t overlay` with `lowers` (top first) and `upper`; work and merged folders beside `upper` in `scratch`. */
export function overlayMount(scratch: string, lowers: readonly string[], upper: string, opts: { metacopy?: boolean; mountPoint?: string } = {}): Mounted {
  const tag = path.basename(upper) + '-' + randomBytes(3).toString('hex');
  const work = path.join(scratch, `work-${tag}`);
  const merged = opts.mountPoint ?? path.join(scratch, `merged-${tag}`);
  for (const d of [upper, work, merged]) mkdirSync(d, { recursive: true });
  const options = [`lowerdir=${lowers.join(':')}`, `upperdir=${upper}`, `workdir=${work}`, ...(opts.metacopy ? ['metacopy=on', 'redirect_dir=on'] : [])];
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', options.join(','), merged]);
  return {
    merged,
    unmount: () => {
      execFileSync('umount', [merged]);
      rmSync(work, { recursive: true, force: true });
      if (!opts.mountPoint) rmSync(merged, { recursive: true, force: true });
    },
  };
}

export function scratchDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(CACHE_DIR, 'containers-'));
  return {
    dir,
    remove: () => {
      unmountUnder(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const digest = (s: string): string => createHash('sha256').update(s).digest('hex');
const hex64 = (): string => randomBytes(32).toString('hex');
/** overlay2/containers-storage short link names: 26 upper-case letters and digits. */
const shortLink = (): string => randomBytes(20).toString('base64').replace(/[^A-Za-z0-9]/g, '').toUpperCase().padEnd(26, 'Q').slice(0, 26);

/** How an image layer is put in place: bound read-only (the default), or copied for a test that changes it. */
export interface ImageOptions {
  writable?: readonly string[];
}

function placeLayer(from: string, dst: string, opts: ImageOptions): void {
  if (opts.writable?.includes(from)) copyLayer(from, dst);
  else bindReadOnly(from, dst);
}

/** A layer folder the way both overlay drivers keep one: `<id>/{diff,link}`, `l/<link>` → `../<id>/diff`, `<id>/lower`. */
function overlayLayer(home: string, id: string, lowerLinks: readonly string[], diffFrom?: string, opts: ImageOptions = {}): { dir: string; diff: string; link: string } {
  const dir = path.join(home, id);
  mkdirSync(dir, { recursive: true });
  const diff = path.join(dir, 'diff');
  if (diffFrom) placeLayer(diffFrom, diff, opts);
  else mkdirSync(diff);
  const link = shortLink();
  writeFileSync(path.join(dir, 'link'), link);
  if (lowerLinks.length > 0) writeFileSync(path.join(dir, 'lower'), lowerLinks.map((l) => `l/${l}`).join(':'));
  mkdirSync(path.join(dir, 'work'), { recursive: true });
  mkdirSync(path.join(home, 'l'), { recursive: true });
  symlinkSync(`../${id}/diff`, path.join(home, 'l', link));
  return { dir, diff, link };
}

export interface LaidOutContainer {
  id: string;
  name: string;
  upper: string;
  /** The lower folders, top first, as the runtime mounts them. */
  lowers: string[];
}

/**
 * Docker's overlay2 layout under `<root>/var/lib/docker` (moby: layer/filestore.go, image/store,
 * daemon/graphdriver/overlay2, container/container.go): image layers under `overlay2/` with
 * layerdb records (`sha256/<chain id>/{diff,cache-id,parent,size}`), the image config and
 * `repositories.json`; per container an `-init` layer with Docker's own files, the writable layer,
 * `layerdb/mounts/<id>/{mount-id,init-id,parent}` and `containers/<id>/config.v2.json`.
 * Layer digests are stand-ins (there is no layer tar here to digest), in the real format.
 */
export class DockerLayout {
  readonly home: string;
  private layers: Array<{ cacheId: string; link: string; diff: string; chainId: string }> = [];
  private imageId = '';

  constructor(
    readonly root: string,
    readonly ref: string,
  ) {
    this.home = path.join(root, 'var/lib/docker');
  }

  /** The image's layers, bottom first. */
  addImage(layers: readonly string[], opts: ImageOptions = {}): void {
    const overlay = path.join(this.home, 'overlay2');
    const layerdb = path.join(this.home, 'image/overlay2/layerdb/sha256');
    const diffIds: string[] = [];
    let parentChain: string | undefined;
    for (const from of layers) {
      const cacheId = hex64();
      const l = overlayLayer(overlay, cacheId, [...this.layers].reverse().map((x) => x.link), from, opts);
      const diffId = `sha256:${digest(`diff ${from}`)}`;
      diffIds.push(diffId);
      const chainId = parentChain === undefined ? diffId : `sha256:${digest(`${parentChain} ${diffId}`)}`;
      const rec = path.join(layerdb, chainId.slice(7));
      mkdirSync(rec, { recursive: true });
      writeFileSync(path.join(rec, 'diff'), diffId);
      writeFileSync(path.join(rec, 'cache-id'), cacheId);
      writeFileSync(path.join(rec, 'size'), '0');
      if (parentChain) writeFileSync(path.join(rec, 'parent'), parentChain);
      parentChain = chainId;
      this.layers.push({ cacheId, link: l.link, diff: l.diff, chainId });
    }
    const config = { architecture: 'amd64', os: 'linux', config: { Cmd: ['bash'] }, rootfs: { type: 'layers', diff_ids: diffIds } };
    const text = JSON.stringify(config);
    this.imageId = digest(text);
    const content = path.join(this.home, 'image/overlay2/imagedb/content/sha256');
    mkdirSync(content, { recursive: true });
    writeFileSync(path.join(content, this.imageId), text);
    const [repo] = this.ref.split(':');
    writeFileSync(path.join(this.home, 'image/overlay2/repositories.json'), JSON.stringify({ Repositories: { [repo!]: { [this.ref]: `sha256:${this.imageId}` } } }));
  }

  get imageDiffs(): string[] {
    return [...this.layers].reverse().map((l) => l.diff);
  }

  createContainer(name: string, opts: { running?: boolean } = {}): LaidOutContainer {
    const overlay = path.join(this.home, 'overlay2');
    const id = hex64();
    const mountId = hex64();
    const imageLinks = [...this.layers].reverse().map((l) => l.link);
    const init = overlayLayer(overlay, `${mountId}-init`, imageLinks);
    // What Docker's init layer holds (daemon/initlayer): empty mount points and /.dockerenv.
    for (const d of ['dev/pts', 'dev/shm', 'proc', 'sys', 'etc']) mkdirSync(path.join(init.diff, d), { recursive: true });
    for (const f of ['.dockerenv', 'etc/hosts', 'etc/hostname', 'etc/resolv.conf']) writeFileSync(path.join(init.diff, f), '');
    const layer = overlayLayer(overlay, mountId, [init.link, ...imageLinks]);
    const mounts = path.join(this.home, 'image/overlay2/layerdb/mounts', id);
    mkdirSync(mounts, { recursive: true });
    writeFileSync(path.join(mounts, 'mount-id'), mountId);
    writeFileSync(path.join(mounts, 'init-id'), `${mountId}-init`);
    writeFileSync(path.join(mounts, 'parent'), this.layers.at(-1)!.chainId);
    const cdir = path.join(this.home, 'containers', id);
    mkdirSync(cdir, { recursive: true });
    const config = {
      ID: id,
      Name: `/${name}`,
      Image: `sha256:${this.imageId}`,
      Driver: 'overlay2',
      Created: new Date().toISOString(),
      Config: { Hostname: id.slice(0, 12), Image: this.ref, Cmd: ['bash'] },
      State: { Running: opts.running ?? false, Paused: false, Pid: 0, ExitCode: 0 },
    };
    writeFileSync(path.join(cdir, 'config.v2.json'), JSON.stringify(config));
    writeFileSync(path.join(cdir, 'hostconfig.json'), JSON.stringify({ NetworkMode: 'bridge' }));
    return { id, name, upper: layer.diff, lowers: [init.diff, ...this.imageDiffs] };
  }
}

/**
 * containers/storage's overlay layout under `<root>/var/lib/containers/storage` (containers.go,
 * layers.go, images.go, drivers/overlay): `overlay/<id>/{diff,link,lower}`, `overlay-layers/
 * layers.json`, `overlay-images/images.json`, `overlay-containers/containers.json` with Podman's
 * metadata string; `volatile: true` puts a container in the transient store's `volatile-*.json`.
 */
export class PodmanLayout {
  readonly home: string;
  private layers: Array<{ id: string; link: string; diff: string }> = [];
  private imageId = '';
  private layerRecords: object[] = [];
  private volatileLayers: object[] = [];
  private containers: object[] = [];
  private volatileContainers: object[] = [];

  constructor(
    readonly root: string,
    readonly ref: string,
  ) {
    this.home = path.join(root, 'var/lib/containers/storage');
  }

  addImage(layers: readonly string[], opts: ImageOptions = {}): void {
    for (const from of layers) {
      const id = hex64();
      const parent = this.layers.at(-1)?.id;
      const l = overlayLayer(path.join(this.home, 'overlay'), id, [...this.layers].reverse().map((x) => x.link), from, opts);
      this.layers.push({ id, link: l.link, diff: l.diff });
      this.layerRecords.push({ id, ...(parent ? { parent } : {}), created: new Date().toISOString(), 'diff-digest': `sha256:${digest(`diff ${from}`)}`, 'diff-size': 0, uidset: [0], gidset: [0] });
    }
    this.imageId = hex64();
    const images = [{ id: this.imageId, digest: `sha256:${digest(this.imageId)}`, names: [this.ref], layer: this.layers.at(-1)!.id, created: new Date().toISOString() }];
    mkdirSync(path.join(this.home, 'overlay-images'), { recursive: true });
    writeFileSync(path.join(this.home, 'overlay-images/images.json'), JSON.stringify(images));
    this.flush();
  }

  get imageDiffs(): string[] {
    return [...this.layers].reverse().map((l) => l.diff);
  }

  createContainer(name: string, opts: { volatile?: boolean } = {}): LaidOutContainer {
    const id = hex64();
    const layerId = hex64();
    const l = overlayLayer(path.join(this.home, 'overlay'), layerId, [...this.layers].reverse().map((x) => x.link));
    (opts.volatile ? this.volatileLayers : this.layerRecords).push({ id: layerId, parent: this.layers.at(-1)!.id, created: new Date().toISOString() });
    const metadata = JSON.stringify({ 'image-name': this.ref, 'image-id': this.imageId, name, 'created-at': Math.floor(Date.now() / 1000), mountlabel: '' });
    (opts.volatile ? this.volatileContainers : this.containers).push({ id, names: [name], image: this.imageId, layer: layerId, metadata, created: new Date().toISOString() });
    this.flush();
    return { id, name, upper: l.diff, lowers: this.imageDiffs };
  }

  /** Marks a container's layer as mounted in the run root's mountpoints.json (a running container). */
  markRunning(c: LaidOutContainer, mountPoint: string): void {
    const file = path.join(this.root, 'run/containers/storage/overlay-layers/mountpoints.json');
    mkdirSync(path.dirname(file), { recursive: true });
    const layer = path.basename(path.dirname(c.upper));
    const list = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as object[]) : [];
    list.push({ id: layer, path: mountPoint, count: 1 });
    writeFileSync(file, JSON.stringify(list));
  }

  private flush(): void {
    mkdirSync(path.join(this.home, 'overlay-layers'), { recursive: true });
    mkdirSync(path.join(this.home, 'overlay-containers'), { recursive: true });
    writeFileSync(path.join(this.home, 'overlay-layers/layers.json'), JSON.stringify(this.layerRecords));
    writeFileSync(path.join(this.home, 'overlay-containers/containers.json'), JSON.stringify(this.containers));
    if (this.volatileLayers.length > 0) writeFileSync(path.join(this.home, 'overlay-layers/volatile-layers.json'), JSON.stringify(this.volatileLayers));
    if (this.volatileContainers.length > 0) writeFileSync(path.join(this.home, 'overlay-containers/volatile-containers.json'), JSON.stringify(this.volatileContainers));
  }
}

/** containerd's overlayfs snapshotter folders: `snapshots/<n>/{fs,work}` under `<root>/var/lib/containerd/…`. */
export class ContainerdLayout {
  readonly home: string;
  private next = 1;
  readonly imageDiffs: string[] = [];

  constructor(readonly root: string) {
    this.home = path.join(root, 'var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots');
  }

  private snapshot(from?: string, opts: ImageOptions = {}): string {
    const dir = path.join(this.home, String(this.next++));
    mkdirSync(path.join(dir, 'work'), { recursive: true });
    const fs = path.join(dir, 'fs');
    if (from) placeLayer(from, fs, opts);
    else mkdirSync(fs);
    return fs;
  }

  addImage(layers: readonly string[], opts: ImageOptions = {}): void {
    for (const from of layers) this.imageDiffs.unshift(this.snapshot(from, opts));
  }

  createContainer(name: string): LaidOutContainer & { mountPoint: string } {
    const upper = this.snapshot();
    const [ns, id] = name.split('/');
    const mountPoint = path.join(this.root, 'run/containerd/io.containerd.runtime.v2.task', ns!, id!, 'rootfs');
    return { id: id!, name, upper, lowers: [...this.imageDiffs], mountPoint };
  }

  /**
   * A container of Docker's containerd image store: an `-init` snapshot with Docker's own files
   * as its nearest parent, the rootfs mounted at `var/lib/docker/rootfs/overlayfs/<id>`.
   */
  createDockerContainer(): LaidOutContainer & { mountPoint: string } {
    const id = hex64();
    const init = this.snapshot();
    for (const d of ['dev/pts', 'etc']) mkdirSync(path.join(init, d), { recursive: true });
    for (const f of ['.dockerenv', 'etc/hosts', 'etc/hostname', 'etc/resolv.conf']) writeFileSync(path.join(init, f), '');
    const upper = this.snapshot();
    const mountPoint = path.join(this.root, 'var/lib/docker/rootfs/overlayfs', id);
    return { id, name: id, upper, lowers: [init, ...this.imageDiffs], mountPoint };
  }
}

/**
 * The host's mount table as the containerd discovery reads it (`<root>/proc/1/mountinfo`): the
 * kernel's own lines for the mounts under `root`, from /proc/self/mountinfo, with `root` taken off
 * the paths (they are the host's paths as seen from inside that root).
 */
export function writeMountinfo(root: string): void {
  const lines = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(root))
    .map((l) => l.split(root).join(''));
  mkdirSync(path.join(root, 'proc/1'), { recursive: true });
  writeFileSync(path.join(root, 'proc/1/mountinfo'), lines.join('\n') + '\n');
}

/**
 * A host of `count` containers of one image, half Docker (overlay2) and half Podman, each made by
 * a real overlay mount and changed by `drift(i, merged)` through its merged view.
 */
export function buildContainerHost(root: string, scratch: string, image: readonly string[], count: number, drift: (i: number, merged: string) => void): LaidOutContainer[] {
  const docker = new DockerLayout(root, 'debian:qs');
  docker.addImage(image);
  const podman = new PodmanLayout(root, 'debian:qs');
  podman.addImage(image);
  const out: LaidOutContainer[] = [];
  for (let i = 0; i < count; i++) {
    const c = i % 2 === 0 ? docker.createContainer(`c-${i}`) : podman.createContainer(`c-${i}`);
    const m = overlayMount(path.join(scratch, 'mounts'), c.lowers, c.upper);
    try {
      drift(i, m.merged);
    } finally {
      m.unmount();
    }
    out.push(c);
  }
  return out;
}
