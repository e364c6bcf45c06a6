// Stopped and running containers of containerd and of Docker's containerd image store, found
// through containerd's own bbolt databases as a real containerd (Debian's package) wrote them:
// its overlayfs snapshotter's folders hold the cached debootstrap image's two layers, and the
// containers were changed through containerd's own overlay mounts (the kernel wrote the upper
// layers). Then the same databases damaged in the ways a crash or a hostile file would.
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPolicy } from '../shared/policy.js';
import type { ContainerReport } from '../shared/report.js';
import { BoltError, BoltFile } from '../agent/containers/bbolt.js';
import { ContainerdStore } from '../agent/containers/containerd-store.js';
import { discoverContainers, scanContainers } from '../agent/containers/scan-containers.js';
import { RealContainerd } from './helpers/containerd.js';
import { brief, ensureImageLayers, scratchDir, writeMountinfo } from './helpers/container-layers.js';

const META_DB = 'var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db';
const SNAP_DB = 'var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/metadata.db';
const REF = 'docker.io/library/debian:qs';

let scratch: { dir: string; remove: () => void };
let root: string;
let ctrd: RealContainerd;
let running: { unmount: () => void } | undefined;
let imageDigest: string;
let dockerId: string;
let dockerImage: string;
const lowersOf: Record<string, string[]> = {};
const upperOf: Record<string, string> = {};


/** Changes a container through containerd's own mount of its snapshot, then unmounts it. */
function change(ns: string, key: string, fn: (merged: string) => void): void {
  const target = path.join(scratch.dir, 'mnt', `${ns}-${key}`);
  const m = ctrd.mount(ns, key, target);
  try {
    fn(target);
  } finally {
    m.unmount();
  }
}

function remember(ns: string, key: string): void {
  const m = ctrd.mountOf(ns, key);
  upperOf[key] = /upperdir=([^,]+)/.exec(m.options)![1]!;
  lowersOf[key] = /lowerdir=([^,]+)/.exec(m.options)![1]!.split(':');
}

beforeAll(async () => {
  const image = ensureImageLayers();
  scratch = scratchDir();
  root = path.join(scratch.dir, 'host');
  ctrd = await RealContainerd.start(root);

  // Kubernetes' namespace: containers made by `ctr containers create` (stopped: never started).
  imageDigest = ctrd.addImage('k8s.io', REF, [image.bottom, image.top], scratch.dir).digest;
  ctrd.ctr('k8s.io', 'containers', 'create', REF, 'pod-stopped');
  change('k8s.io', 'pod-stopped', (m) => {
    writeFileSync(path.join(m, 'usr/local/bin/miner'), '#!/bin/sh\necho mining\n', { mode: 0o755 });
    rmSync(path.join(m, 'etc/issue'));
  });
  ctrd.ctr('k8s.io', 'containers', 'create', REF, 'pod-quiet');
  // Enough labels that the container's bucket spans several leaf pages under a branch page.
  const labels = Array.from({ length: 300 }, (_, i) => ['--label', `example.com/label-${i}=${'v'.repeat(60)}`]).flat();
  ctrd.ctr('k8s.io', 'containers', 'create', ...labels, REF, 'pod-labels');
  // A running one: its rootfs mounted where the runtime v2 shim mounts it, left mounted.
  ctrd.ctr('k8s.io', 'containers', 'create', REF, 'pod-running');
  running = ctrd.mount('k8s.io', 'pod-running', path.join(root, 'run/containerd/io.containerd.runtime.v2.task/k8s.io/pod-running/rootfs'));
  writeFileSync(path.join(root, 'run/containerd/io.containerd.runtime.v2.task/k8s.io/pod-running/rootfs/etc/motd'), 'changed while running\n');
  for (const k of ['pod-stopped', 'pod-quiet', 'pod-running']) remember('k8s.io', k);

  // Docker ≥ 29's containerd image store: snapshots in namespace `moby`, the container's config in
  // Docker's own folder with the snapshotter as its driver.
  const moby = ctrd.addImage('moby', REF, [image.bottom, image.top], scratch.dir);
  dockerImage = moby.digest;
  dockerId = randomBytes(32).toString('hex');
  ctrd.dockerSnapshot(dockerId, moby.chainIds.at(-1)!);
  remember('moby', dockerId);
  change('moby', dockerId, (m) => writeFileSync(path.join(m, 'usr/bin/qs-dropped'), '\x7fELF', { mode: 0o755 }));
  const cdir = path.join(root, 'var/lib/docker/containers', dockerId);
  mkdirSync(cdir, { recursive: true });
  writeFileSync(
    path.join(cdir, 'config.v2.json'),
    JSON.stringify({ ID: dockerId, Name: '/web-29', Image: moby.digest, Driver: 'overlayfs', Config: { Image: 'debian:qs' }, State: { Running: false, Pid: 0 } }),
  );
  writeMountinfo(root);
}, 180_000);

afterAll(async () => {
  running?.unmount();
  await ctrd?.stop();
  scratch?.remove();
});

describe("containerd's databases, as containerd wrote them", () => {
  it('reads a real meta.db whole, a bucket spread over a branch page and its leaves included', () => {
    const buf = readFileSync(path.join(root, META_DB));
    const ps = buf.readUInt32LE(16 + 8);
    // A branch page (flags 0x01) is in the file: the reader has one to walk.
    const flags = Array.from({ length: buf.length / ps }, (_, p) => buf.readUInt16LE(p * ps + 8));
    expect(flags).toContain(0x01);
    const ns = new BoltFile(buf).root().bucket('v1')!.bucket('k8s.io')!;
    expect(ns.bucket('containers')!.bucketNames().sort()).toEqual(['pod-labels', 'pod-quiet', 'pod-running', 'pod-stopped']);
    const labels = ns.bucket('containers')!.bucket('pod-labels')!.bucket('labels')!.entries();
    expect(labels.filter((e) => e.key.toString().startsWith('example.com/label-')).length).toBe(300);
    expect(ns.bucket('images')!.bucket(REF)!.bucket('target')!.get('digest')!.toString()).toBe(imageDigest);
  });

  it('finds stopped and running containerd containers with their image and snapshot folders', async () => {
    const d = await discoverContainers(root);
    const seen = d.containers.map((c) => `${c.runtime} ${c.name} ${c.image.ref ?? '-'} ${c.image.id ?? '-'} ${c.state}`).sort();
    expect(seen).toEqual([
      `containerd k8s.io/pod-labels ${REF} ${imageDigest} stopped`,
      `containerd k8s.io/pod-quiet ${REF} ${imageDigest} stopped`,
      `containerd k8s.io/pod-running ${REF} ${imageDigest} running`,
      `containerd k8s.io/pod-stopped ${REF} ${imageDigest} stopped`,
      `docker web-29 debian:qs ${dockerImage} stopped`,
    ].sort());
    // The folders are the ones containerd itself mounts, upper and lowers in its order.
    for (const key of ['pod-stopped', 'pod-running']) {
      const c = d.containers.find((x) => x.id === key)!;
      expect(c.upper).toBe(upperOf[key]);
      expect(c.lowers).toEqual(lowersOf[key]);
      expect(c.imageLowers).toEqual(lowersOf[key]);
    }
    // Docker's: the init snapshot is the container's own, the image's layers are the rest.
    const docker = d.containers.find((c) => c.id === dockerId)!;
    expect(docker.upper).toBe(upperOf[dockerId]);
    expect(docker.lowers).toEqual(lowersOf[dockerId]);
    expect(docker.imageLowers).toEqual(lowersOf[dockerId]!.slice(1));
    expect(d.warnings).toEqual([]);
    expect(d.containers.flatMap((c) => c.warnings ?? [])).toEqual([]);
  });

  it("reports each one's drift against its image, and nothing for an untouched one", async () => {
    const scan = await scanContainers(root, defaultPolicy());
    const by = (id: string): ContainerReport => scan.containers.find((c) => c.id === id)!;
    expect(by('pod-stopped').findings.map(brief).sort()).toEqual(['file-added critical /usr/local/bin/miner', 'file-removed high /etc/issue']);
    expect(by('pod-stopped').state).toBe('stopped');
    expect(by('pod-running').findings.map(brief)).toEqual(['file-modified medium /etc/motd']);
    expect(by('pod-quiet').findings).toEqual([]);
    expect(by('pod-labels').findings).toEqual([]);
    expect(by(dockerId).findings.map(brief)).toEqual(['file-added critical /usr/bin/qs-dropped']);
    expect(scan.warnings).toEqual([]);
  });
});

describe('damaged databases: a warning naming the file, never a crash or a hang', () => {
  /** A host root holding only containerd's two databases, `meta.db` replaced by `damage(copy)`. */
  async function discoverWith(damage: (buf: Buffer) => Buffer): Promise<Awaited<ReturnType<typeof discoverContainers>>> {
    const other = path.join(scratch.dir, `damaged-${randomBytes(4).toString('hex')}`);
    for (const f of [META_DB, SNAP_DB]) mkdirSync(path.dirname(path.join(other, f)), { recursive: true });
    copyFileSync(path.join(root, SNAP_DB), path.join(other, SNAP_DB));
    writeFileSync(path.join(other, META_DB), damage(Buffer.from(readFileSync(path.join(root, META_DB)))));
    try {
      return await discoverContainers(other);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  }
  const pageSizeOf = (buf: Buffer): number => buf.readUInt32LE(24);
  /** Calls `fn` on every bucket value with a root page of every leaf page, with that page's id (bbolt's layout, by hand). */
  function eachBucketRoot(buf: Buffer, fn: (rootAt: number, page: number) => void): void {
    const ps = pageSizeOf(buf);
    for (let p = 2; p < buf.length / ps; p++) {
      const at = p * ps;
      if (buf.readUInt16LE(at + 8) !== 0x02) continue;
      for (let i = 0; i < buf.readUInt16LE(at + 10); i++) {
        const el = at + 16 + i * 16;
        if ((buf.readUInt32LE(el) & 1) === 0) continue;
        const value = el + buf.readUInt32LE(el + 4) + buf.readUInt32LE(el + 8);
        if (buf.readBigUInt64LE(value) !== 0n) fn(value, p);
      }
    }
  }
  const codes = (d: Awaited<ReturnType<typeof discoverContainers>>): string[] => d.warnings.map((w) => `${w.code} ${path.basename(w.path ?? '')}`);

  it('a file cut short, or with both meta pages torn', async () => {
    const cut = await discoverWith((b) => b.subarray(0, 3000));
    expect(cut.containers).toEqual([]);
    expect(cut.warnings[0]!.message).toMatch(/is cut short/);
    const torn = await discoverWith((b) => {
      const ps = pageSizeOf(b);
      b[16 + 40]! ^= 0xff;
      b[ps + 16 + 40]! ^= 0xff;
      return b;
    });
    expect(codes(torn)).toEqual(['CONTAINER_METADATA_INVALID meta.db']);
    expect(torn.warnings[0]!.message).toMatch(/fails its checksum/);
  });

  it('one torn meta page: the other, one transaction older, is read', async () => {
    const d = await discoverWith((b) => {
      const ps = pageSizeOf(b);
      const newer = b.readBigUInt64LE(16 + 48) > b.readBigUInt64LE(ps + 16 + 48) ? 0 : ps;
      b[newer + 16 + 40]! ^= 0xff;
      return b;
    });
    expect(d.containers.map((c) => c.name).sort()).toContain('k8s.io/pod-stopped');
  });

  it('a cycle: every bucket pointing back at the page that holds it', async () => {
    let made = 0;
    const d = await discoverWith((b) => {
      eachBucketRoot(b, (at, page) => {
        b.writeBigUInt64LE(BigInt(page), at);
        made++;
      });
      return b;
    });
    expect(made).toBeGreaterThan(0);
    expect(d.warnings.some((w) => w.code === 'CONTAINER_METADATA_INVALID' && /reached twice/.test(w.message))).toBe(true);
  });

  it('a bucket root past the end of the file, and a page claiming more elements than it holds', async () => {
    const far = await discoverWith((b) => {
      eachBucketRoot(b, (at) => b.writeBigUInt64LE(1n << 40n, at));
      return b;
    });
    expect(far.warnings.some((w) => /outside the pages in use/.test(w.message))).toBe(true);
    const many = await discoverWith((b) => {
      const ps = pageSizeOf(b);
      for (let p = 2; p < b.length / ps; p++) if (b.readUInt16LE(p * ps + 8) === 0x02) b.writeUInt16LE(0xffff, p * ps + 10);
      return b;
    });
    expect(many.warnings.some((w) => /claims 65535 elements/.test(w.message))).toBe(true);
  });

  it('random bytes over the pages: every outcome is a result or a BoltError', () => {
    const clean = readFileSync(path.join(root, META_DB));
    const snapshots = readFileSync(path.join(root, SNAP_DB));
    const ps = pageSizeOf(clean);
    let errors = 0;
    let seed = 17;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 300; round++) {
      const b = Buffer.from(clean);
      for (let k = 0; k < 1 + (round % 16); k++) {
        const at = 2 * ps + Math.floor(random() * (b.length - 2 * ps - 8));
        if (round % 3 === 0) b.writeBigUInt64LE(BigInt(Math.floor(random() * 64)), at);
        else b[at] = Math.floor(random() * 256);
      }
      try {
        const walk = (bucket: ReturnType<BoltFile['root']>, depth: number): void => {
          // By the keys' bytes: random bytes make keys that are not UTF-8.
          for (const e of bucket.entries()) if (e.value === null && depth < 40) walk(bucket.bucket(e.key)!, depth + 1);
        };
        walk(new BoltFile(b).root(), 0);
        // And what discovery makes of it: warnings and errors, never a TypeError.
        const store = new ContainerdStore(new BoltFile(b), new BoltFile(snapshots), '/snapshots');
        for (const c of store.containers().containers) store.chain(c.namespace, c.snapshotter ?? 'overlayfs', c.snapshotKey ?? c.id);
      } catch (err) {
        if (!(err instanceof BoltError)) throw err;
        errors++;
      }
    }
    expect(errors).toBeGreaterThan(0);
  });
});

