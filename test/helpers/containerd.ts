// A real containerd (Debian's package) for the tests: it writes its own bbolt databases and
// snapshot folders under a test host's root, driven through `ctr` as Docker and Kubernetes drive
// it through the same API. Nothing here talks beyond a unix socket in a temporary folder.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bindReadOnly } from './container-layers.js';
import { waitFor } from './processes.js';

export class RealContainerd {
  private constructor(
    readonly root: string,
    private readonly socketDir: string,
    private readonly child: ChildProcess,
  ) {}

  get socket(): string {
    return path.join(this.socketDir, 'sock');
  }

  /**
   * Starts containerd with its root at `<root>/var/lib/containerd` and its state at
   * `<root>/run/containerd` (where the shim mounts running containers' rootfs), the CRI and the
   * snapshotters other than overlayfs and native left out.
   */
  static async start(root: string): Promise<RealContainerd> {
    const socketDir = mkdtempSync(path.join(os.tmpdir(), 'qs-ctrd-'));
    const config = path.join(socketDir, 'config.toml');
    writeFileSync(
      config,
      [
        'version = 2',
        `root = ${JSON.stringify(path.join(root, 'var/lib/containerd'))}`,
        `state = ${JSON.stringify(path.join(root, 'run/containerd'))}`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
        '[grpc]',
        `  address = ${JSON.stringify(path.join(socketDir, 'sock'))}`,
        '',
      ].join('\n'),
    );
    const log = openSync(path.join(socketDir, 'log'), 'w');
    const child = spawn('containerd', ['--config', config], { stdio: ['ignore', log, log] });
    const c = new RealContainerd(root, socketDir, child);
    await waitFor('containerd to serve', () => {
      if (child.exitCode !== null) throw new Error(`containerd exited: ${readFileSync(path.join(socketDir, 'log'), 'utf8').slice(-2000)}`);
      try {
        c.ctr('default', 'version');
        return true;
      } catch {
        return false;
      }
    }, 20_000, 100);
    return c;
  }

  ctr(namespace: string, ...args: string[]): string {
    return execFileSync('ctr', ['-a', this.socket, '-n', namespace, ...args], { encoding: 'utf8', timeout: 60_000 });
  }

  /** The overlayfs snapshotter's own mount of snapshot `key` (`mount -t overlay … -o …` or a bind). */
  mountOf(namespace: string, key: string): { type: string; source: string; options: string } {
    const line = this.ctr(namespace, 'snapshots', 'mounts', '/target', key).trim();
    const m = /^mount -t (\S+) (\S+) \/target -o (\S+)$/.exec(line);
    if (!m) throw new Error(`unexpected mount line: ${line}`);
    return { type: m[1]!, source: m[2]!, options: m[3]! };
  }

  /** The writable folder of an active snapshot. */
  upperOf(namespace: string, key: string): string {
    const m = this.mountOf(namespace, key);
    return m.type === 'bind' ? m.source : /(?:^|,)upperdir=([^,]+)/.exec(m.options)![1]!;
  }

  /** Mounts snapshot `key` at `target` exactly as containerd says to (what its shim does for a task). */
  mount(namespace: string, key: string, target: string): { unmount: () => void } {
    const m = this.mountOf(namespace, key);
    mkdirSync(target, { recursive: true });
    execFileSync('mount', ['-t', m.type, m.source, target, '-o', m.options]);
    return { unmount: () => execFileSync('umount', [target]) };
  }

  /**
   * An image named `ref` in `namespace` whose layers are the folders `layers` (bottom first):
   * each is a snapshot prepared on the one below, filled (hard links, as fast as the cached tree
   * allows) and committed under its chain id, as containerd's unpacker leaves them; the image
   * record itself comes from `ctr images import` of an OCI archive whose config lists those diff
   * ids. (The layer blobs in that archive are small stand-ins: nothing here reads blobs.)
   */
  addImage(namespace: string, ref: string, layers: readonly string[], scratch: string): { chainIds: string[]; digest: string } {
    const dir = mkdtempSync(path.join(scratch, 'oci-'));
    const blobs = path.join(dir, 'blobs/sha256');
    mkdirSync(blobs, { recursive: true });
    const put = (b: Buffer): { digest: string; size: number } => {
      const hex = createHash('sha256').update(b).digest('hex');
      writeFileSync(path.join(blobs, hex), b);
      return { digest: `sha256:${hex}`, size: b.length };
    };
    const layerBlobs = layers.map((_, i) => {
      const src = path.join(dir, `layer-${i}`);
      mkdirSync(src);
      writeFileSync(path.join(src, `stand-in-${i}`), `${ref} layer ${i}\n`);
      return put(execFileSync('tar', ['-C', src, '--mtime=@0', '--owner=0', '--group=0', '-cf', '-', '.']));
    });
    const chainIds: string[] = [];
    for (const b of layerBlobs) {
      const prev = chainIds.at(-1);
      chainIds.push(prev === undefined ? b.digest : `sha256:${createHash('sha256').update(`${prev} ${b.digest}`).digest('hex')}`);
    }
    layers.forEach((from, i) => {
      const key = `${chainIds[i]}-extract`;
      this.ctr(namespace, 'snapshots', 'prepare', key, ...(i > 0 ? [chainIds[i - 1]!] : []));
      // The cached layer, bound read-only into the snapshot's folder (see bindReadOnly).
      bindReadOnly(from, this.upperOf(namespace, key));
      this.ctr(namespace, 'snapshots', 'commit', chainIds[i]!, key);
      this.protect(namespace, chainIds[i]!);
    });
    const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/bash'] }, rootfs: { type: 'layers', diff_ids: layerBlobs.map((b) => b.digest) } })));
    const manifest = put(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
          layers: layerBlobs.map((b) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...b })),
        }),
      ),
    );
    writeFileSync(
      path.join(dir, 'index.json'),
      JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': ref }, platform: { architecture: 'amd64', os: 'linux' } }] }),
    );
    writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    const tar = path.join(scratch, `${path.basename(dir)}.tar`);
    execFileSync('tar', ['-C', dir, '-cf', tar, '.']);
    this.ctr(namespace, 'images', 'import', '--no-unpack', tar);
    rmSync(dir, { recursive: true, force: true });
    rmSync(tar, { force: true });
    return { chainIds, digest: manifest.digest };
  }

  /** Keeps a snapshot from containerd's garbage collector (Docker holds its snapshots by leases). */
  protect(namespace: string, key: string): void {
    this.ctr(namespace, 'snapshots', 'label', key, 'containerd.io/gc.root=quicksand-test');
  }

  /**
   * A container of Docker's containerd image store, as moby's daemon/containerd/image_snapshot.go
   * makes it: an `<id>-init` snapshot holding Docker's own files committed on the image's top
   * layer, then the container's snapshot `<id>` on it, in namespace `moby`.
   */
  dockerSnapshot(id: string, imageTop: string): string {
    this.ctr('moby', 'snapshots', 'prepare', `${id}-init-key`, imageTop);
    const init = this.upperOf('moby', `${id}-init-key`);
    for (const d of ['dev/pts', 'dev/shm', 'proc', 'sys', 'etc']) mkdirSync(path.join(init, d), { recursive: true });
    for (const f of ['.dockerenv', 'etc/hosts', 'etc/hostname', 'etc/resolv.conf']) writeFileSync(path.join(init, f), '');
    this.ctr('moby', 'snapshots', 'commit', `${id}-init`, `${id}-init-key`);
    this.protect('moby', `${id}-init`);
    this.ctr('moby', 'snapshots', 'prepare', id, `${id}-init`);
    this.protect('moby', id);
    return this.upperOf('moby', id);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.socketDir, { recursive: true, force: true });
  }
}

