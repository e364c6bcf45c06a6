// A container's writable layer against its image's layers, with every overlay marker made by the
// kernel: real overlay mounts over a two-layer debootstrap image, mutated through the merged view,
// unmounted, then read the way the agent reads a container host (never mounting anything).
import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPolicy } from '../shared/policy.js';
import type { ContainerReport, Finding } from '../shared/report.js';
import { LayerAttrCache } from '../agent/containers/layer-attr-cache.js';
import { LayerStack, layeredRoot } from '../agent/containers/layers.js';
import { dpkgCollector } from '../agent/collect/dpkg.js';
import { readOverlayAttrs } from '../agent/containers/overlay-xattrs.js';
import { ContainerScanContext, scanContainer } from '../agent/containers/scan-container.js';
import type { DiscoveredContainer } from '../agent/containers/types.js';
import { brief, ensureImageLayers, overlayMount, scratchDir } from './helpers/container-layers.js';

let scratch: { dir: string; remove: () => void };
let image: { bottom: string; top: string };
const ctx = new ContainerScanContext(defaultPolicy());

function container(name: string, upper: string): DiscoveredContainer {
  const lowers = [image.top, image.bottom];
  return { runtime: 'docker', id: `${name}0000000000000000`.slice(0, 16), name, image: { ref: 'debian:qs' }, state: 'stopped', upper, lowers, imageLowers: lowers };
}

/** Mounts a fresh container over the image, runs `mutate` on the merged view, unmounts; returns the upper folder. */
function containerWith(name: string, mutate: (merged: string) => void, opts: { metacopy?: boolean } = {}): string {
  const upper = path.join(scratch.dir, name, 'upper');
  mkdirSync(path.dirname(upper), { recursive: true });
  const m = overlayMount(path.join(scratch.dir, name), [image.top, image.bottom], upper, opts);
  try {
    mutate(m.merged);
  } finally {
    m.unmount();
  }
  return upper;
}

const flat = (fs: readonly Finding[]): Finding[] => fs.flatMap((f) => [f, ...flat(f.changes ?? [])]);

beforeAll(() => {
  image = ensureImageLayers();
  scratch = scratchDir();
});
afterAll(() => scratch?.remove());

describe("the image's own layers, read through their overlay markers", () => {
  it('hides what a whiteout and an opaque folder of the upper image layer hide, and merges the rest', async () => {
    const { index } = await readOverlayAttrs([image.top]);
    expect(index.get(`${image.top}/usr/share/doc/less`)?.opaque).toBe('y');
    expect(lstatSync(`${image.top}/etc/issue.net`).isCharacterDevice()).toBe(true);
    const stack = new LayerStack([
      { dir: image.top, attrs: index },
      { dir: image.bottom, attrs: new Map() },
    ]);
    expect(stack.resolve('/etc/issue.net')).toBeNull();
    expect(lstatSync(`${image.bottom}/etc/issue.net`).isFile()).toBe(true);
    expect(stack.list('/usr/share/doc/less').map((e) => e.name)).toEqual(['README.slim']);
    expect(stack.resolve('/usr/share/doc/less/copyright')).toBeNull();
    // netcat came with the upper image layer, bash with the lower one: one merged folder.
    const doc = stack.list('/usr/share/doc').map((e) => e.name);
    expect(doc).toContain('netcat-openbsd');
    expect(doc).toContain('bash');
    expect(stack.hostPath('/var/lib/dpkg/status')).toBe(`${image.top}/var/lib/dpkg/status`);
    expect(stack.hostPath('/usr/bin/bash')).toBe(`${image.bottom}/usr/bin/bash`);
  });
});

describe("a container's package database with a file whited out", () => {
  it('takes the whited-out file for absent, not unreadable: the package is kept and no warning says otherwise', async () => {
    // A layer over the image that deletes bash's digests as overlayfs does: a 0:0 character device.
    const top = path.join(scratch.dir, 'whiteout-md5sums');
    mkdirSync(`${top}/var/lib/dpkg/info`, { recursive: true });
    execFileSync('mknod', [`${top}/var/lib/dpkg/info/bash.md5sums`, 'c', '0', '0']);
    const { index } = await readOverlayAttrs([image.top]);
    const stack = new LayerStack([
      { dir: top, attrs: new Map() },
      { dir: image.top, attrs: index },
      { dir: image.bottom, attrs: new Map() },
    ]);
    const got = (await dpkgCollector.collect(layeredRoot(stack, 'container')))!;
    expect(got.warnings.filter((w) => w.code.endsWith('_UNREADABLE'))).toEqual([]);
    expect(got.packages.map((p) => p.name)).toContain('bash');
    const bash = got.owned.get('/usr/bin/bash');
    expect(bash?.owner.name).toBe('bash');
    expect(bash?.digest).toBeUndefined(); // its digests are gone with the file
  });
});

describe('a container mutated through its merged view', () => {
  let report: ContainerReport;
  let upper: string;

  beforeAll(async () => {
    upper = containerWith('mutated', (m) => {
      rmSync(path.join(m, 'usr/bin/less')); // a package's binary deleted: a kernel whiteout
      writeFileSync(path.join(m, 'usr/local/bin/qs-dropped'), '#!/bin/sh\necho pwned\n', { mode: 0o755 }); // an executable dropped
      writeFileSync(path.join(m, 'etc/debian_version'), readFileSync(path.join(m, 'etc/debian_version'))); // the same bytes rewritten
      execFileSync('touch', [path.join(m, 'etc/bash.bashrc')]); // copied up by a touch
      appendFileSync(path.join(m, 'usr/bin/tac'), '\n# tampered\n'); // a package's binary edited
      rmSync(path.join(m, 'usr/share/doc/netcat-openbsd'), { recursive: true }); // emptied and made again: opaque
      mkdirSync(path.join(m, 'usr/share/doc/netcat-openbsd'));
      writeFileSync(path.join(m, 'etc/motd'), 'changed in the container\n');
    });
    report = await scanContainer(container('mutated', upper), ctx);
  });

  it('finds the whiteout, the opaque folder and the metacopy-free copy-ups where the kernel put them', async () => {
    expect(lstatSync(`${upper}/usr/bin/less`).isCharacterDevice()).toBe(true);
    expect(lstatSync(`${upper}/usr/bin/less`).rdev).toBe(0);
    const { index } = await readOverlayAttrs([upper]);
    expect(index.get(`${upper}/usr/share/doc/netcat-openbsd`)?.opaque).toBe('y');
    // docker diff would call these "C": they are in the upper layer with the image's bytes.
    expect(lstatSync(`${upper}/etc/debian_version`).isFile()).toBe(true);
    expect(lstatSync(`${upper}/etc/bash.bashrc`).isFile()).toBe(true);
  });

  it('reports each change once, with the severity the change deserves', () => {
    const all = flat(report.findings).map(brief);
    expect(all).toContain('file-added critical /usr/local/bin/qs-dropped');
    expect(all).toContain('file-removed high /usr/bin/less');
    expect(all).toContain('file-modified critical /usr/bin/tac');
    expect(all).toContain('file-modified medium /etc/motd');
    expect(all).toContain('file-removed high /usr/share/doc/netcat-openbsd/copyright');
    expect(report.findings[0]!.severity).toBe('critical');
    expect(all.length, all.join('\n')).toBeLessThan(40);
    expect(report.summary.status).toBe('drift');
  });

  it('does not call a copy-up with the same bytes drift (docker diff says C)', () => {
    const paths = flat(report.findings).map((f) => f.path);
    expect(paths).not.toContain('/etc/debian_version');
    expect(paths).not.toContain('/etc/bash.bashrc');
    expect(paths).not.toContain('/usr/share/doc/netcat-openbsd');
    expect(paths).not.toContain('/etc/issue.net'); // whited out by the image itself, not the container
  });

  it('reads what changed, not the image', () => {
    expect(report.stats!.entries).toBeLessThan(40);
    expect(report.stats!.bytesRead).toBeLessThan(2 * 1024 * 1024);
  });
});

describe('a metacopy upper layer', () => {
  it('takes the bytes of a chmod-ed file from the lower layer: a mode change, not new content', async () => {
    const upper = containerWith(
      'metacopy',
      (m) => {
        chmodSync(path.join(m, 'usr/bin/tac'), 0o700);
        chmodSync(path.join(m, 'usr/bin/bash'), 0o4755);
      },
      { metacopy: true },
    );
    const { index } = await readOverlayAttrs([upper]);
    expect(index.get(`${upper}/usr/bin/tac`)?.metacopy).toBe(true); // made by the kernel, data not copied
    const report = await scanContainer(container('metacopy', upper), ctx);
    const all = flat(report.findings).map(brief);
    expect(all).toContain('file-metadata critical /usr/bin/bash');
    expect(all).toContain('file-metadata high /usr/bin/tac');
    expect(all.filter((f) => f.startsWith('file-modified'))).toEqual([]);
    expect(report.stats!.bytesRead).toBeLessThan(3 * 1024 * 1024);
  });
});

describe('an untouched container', () => {
  it('reports nothing', async () => {
    const upper = containerWith('untouched', (m) => {
      readFileSync(path.join(m, 'etc/os-release'));
    });
    const report = await scanContainer(container('untouched', upper), ctx);
    expect(report.findings).toEqual([]);
    expect(report.summary.status).toBe('clean');
    expect(report.state).toBe('stopped');
  });
});

describe("the image layers' markers kept in the state folder", () => {
  it('serves them to the next scan while the layer folder is the same, and reads a changed folder again', async () => {
    const { index } = await readOverlayAttrs([image.top]);
    const file = path.join(scratch.dir, 'container-layers.json');
    const first = new LayerAttrCache(file);
    first.set(image.top, index);
    first.save();
    const next = new LayerAttrCache(file);
    expect(next.get(image.top)?.get(`${image.top}/usr/share/doc/less`)).toEqual({ opaque: 'y' });
    // Another folder at that path (a layer unpacked again) is not the one the markers were read from.
    const other = path.join(scratch.dir, 'layer-copy');
    mkdirSync(other);
    next.set(other, new Map([[`${other}/x`, { opaque: 'y' }]]));
    writeFileSync(path.join(other, 'new-entry'), '');
    expect(next.get(other)).toBeUndefined();
  });
});

describe("the image seals kept in the state folder", () => {
  it('keeps each seal in a file of its own, read only when asked for, and moves the seals of an older state file there', () => {
    const state = path.join(scratch.dir, 'seal-state');
    mkdirSync(state);
    const file = path.join(state, 'container-layers.json');
    const dirs = ['/var/lib/docker/overlay2/b/diff', '/var/lib/docker/overlay2/a/diff'];
    const files = [{ path: '/etc/hostname', type: 'file' as const, mode: '0644', uid: 0, gid: 0, size: 5, sha256: 'ab'.repeat(32) }];
    // As an earlier agent wrote it: the seals inside the file every scan reads.
    writeFileSync(file, JSON.stringify({ layers: [], images: [], seals: [[dirs.join('\u0000'), { source: 'first-sight', files, stats: [['/etc/hostname', '1:2:5:3:4', 'ab'.repeat(32)]] }]] }));
    const old = new LayerAttrCache(file);
    expect(old.getSeal(dirs)?.files.get('/etc/hostname')).toEqual(files[0]);
    old.save();
    expect(Object.keys(JSON.parse(readFileSync(file, 'utf8')) as object)).not.toContain('seals');
    const next = new LayerAttrCache(file);
    expect(next.getSeal(dirs)?.stats.get('/etc/hostname')).toEqual(['1:2:5:3:4', 'ab'.repeat(32)]);
    expect(next.getSeal(['/elsewhere'])).toBeUndefined();
  });
});
