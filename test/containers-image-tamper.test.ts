// Someone with root on a container host writes in an image's layer folder (under
// /var/lib/docker/overlay2/<id>/diff): every container of that image shows the change while no
// writable layer holds it. The agent keeps the image's files and digests as it first read them (its
// state folder) and finds the layers' drift from them on every later scan.
import { closeSync, copyFileSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPolicy } from '../shared/policy.js';
import type { ContainerReport } from '../shared/report.js';
import { COLLECTORS } from '../agent/collect/index.js';
import { scanContainers } from '../agent/containers/scan-containers.js';
import { DockerLayout, PodmanLayout, brief, ensureImageLayers, overlayMount, scratchDir } from './helpers/container-layers.js';
import type { LaidOutContainer } from './helpers/container-layers.js';

let scratch: { dir: string; remove: () => void };
let root: string;
let state: string;
let dockerTop: string;
const made: Record<string, LaidOutContainer> = {};

const scan = async (): Promise<Record<string, ContainerReport>> => {
  const got = await scanContainers(root, defaultPolicy(), { collectors: COLLECTORS, stateDir: state });
  return Object.fromEntries(got.containers.map((c) => [c.name!, c]));
};

/** Writes `text` over a layer file as an intruder would: a new file renamed over it, its old times put back. */
function replaceInLayer(file: string, text: string | Buffer): void {
  const st = lstatSync(file);
  const tmp = `${file}.new`;
  writeFileSync(tmp, text, { mode: st.mode & 0o7777 });
  utimesSync(tmp, st.atime, st.mtime);
  renameSync(tmp, file);
}

beforeAll(() => {
  const image = ensureImageLayers();
  scratch = scratchDir();
  root = path.join(scratch.dir, 'host');
  state = path.join(scratch.dir, 'state');
  mkdirSync(state);
  const docker = new DockerLayout(root, 'debian:qs');
  // The top layer is a real copy: the test writes in it. The others are the cache, bound read-only.
  docker.addImage([image.bottom, image.top], { writable: [image.top] });
  const podman = new PodmanLayout(root, 'localhost/debian:qs');
  podman.addImage([image.bottom, image.top]);
  made.dquiet = docker.createContainer('d-quiet');
  made.pquiet = podman.createContainer('p-quiet');
  // A container that wrote nc.openbsd itself (the image's bytes): its own copy decides there.
  made.own = docker.createContainer('d-own-nc');
  const m = overlayMount(path.join(scratch.dir, 'mounts'), made.own.lowers, made.own.upper);
  try {
    const nc = path.join(m.merged, 'usr/bin/nc.openbsd');
    writeFileSync(nc, readFileSync(nc));
  } finally {
    m.unmount();
  }
  dockerTop = docker.imageDiffs[0]!;
});

afterAll(() => scratch?.remove());

describe('an image layer changed on the host after the agent first read it', () => {
  let before: Record<string, ContainerReport>;
  let after: Record<string, ContainerReport>;
  let again: Record<string, ContainerReport>;

  beforeAll(async () => {
    before = await scan();
    // The Docker copy of the image's top layer is changed in place; the Podman copy is not.
    replaceInLayer(path.join(dockerTop, 'usr/bin/nc.openbsd'), Buffer.concat([readFileSync(path.join(dockerTop, 'usr/bin/nc.openbsd')), Buffer.from('#backdoor')]));
    mkdirSync(path.join(dockerTop, 'usr/local/bin'), { recursive: true });
    writeFileSync(path.join(dockerTop, 'usr/local/bin/implant'), '\x7fELF', { mode: 0o755 });
    rmSync(path.join(dockerTop, 'etc/alternatives/netcat'));
    // The same bytes in a new file: its identity moved, its content did not.
    const doc = path.join(dockerTop, 'usr/share/doc/netcat-openbsd/copyright');
    copyFileSync(doc, `${doc}.copy`);
    renameSync(`${doc}.copy`, doc);
    after = await scan();
    again = await scan();
  });

  it('reports nothing before the layer is changed', () => {
    for (const name of ['d-quiet', 'p-quiet', 'd-own-nc']) expect(before[name]!.findings.map(brief)).toEqual([]);
  });

  it('reports the changed, added and deleted layer files on every container of that copy of the image', () => {
    const quiet = after['d-quiet']!.findings;
    expect(quiet.map(brief).sort()).toEqual(['file-added critical /usr/local/bin/implant', 'file-modified critical /usr/bin/nc.openbsd', 'file-removed high /etc/alternatives/netcat'].sort());
    expect(quiet.find((f) => f.path === '/usr/bin/nc.openbsd')!.reason).toMatch(/image layers on this host changed/);
    expect(quiet.find((f) => f.path === '/usr/local/bin/implant')!.reason).toMatch(/executable not in the container image: the image layers/);
  });

  it('compares a path the container wrote itself with the image, not with the changed layer', () => {
    expect(after['d-own-nc']!.findings.map(brief).sort()).toEqual(['file-added critical /usr/local/bin/implant', 'file-removed high /etc/alternatives/netcat'].sort());
  });

  it('reports nothing on the containers of an untouched copy of the image', () => {
    expect(after['p-quiet']!.findings.map(brief)).toEqual([]);
  });

  it('never takes the changed layer for the image: the next scan reports the same', () => {
    expect(again['d-quiet']!.findings.map(brief).sort()).toEqual(after['d-quiet']!.findings.map(brief).sort());
    expect(again['d-quiet']!.findings).toHaveLength(3);
    expect(again['p-quiet']!.findings).toEqual([]);
  });
});

// Between two full reads of an image's layers (a day apart by default) a scan lists each layer's
// folders only: an entry added, removed or renamed moves its folder's times and is seen at once;
// a file rewritten in place (same inode) is seen at the next full read, as docs/container-layouts.md says.
describe("between full reads: each image layer's folders are checked, not every path", () => {
  let host: string;
  let hostState: string;
  let top: string;
  const scanAt = async (fullCheckMs?: number) => {
    const got = await scanContainers(host, defaultPolicy(), { collectors: COLLECTORS, stateDir: hostState, ...(fullCheckMs === undefined ? {} : { fullCheckMs }) });
    return { c: got.containers.find((x) => x.name === 'g-quiet')!, p: got.containers.find((x) => x.name === 'g-podman')!, folders: got.warnings.find((w) => w.code === 'CONTAINER_IMAGE_LAYERS_FOLDERS_CHECKED') };
  };

  beforeAll(async () => {
    const image = ensureImageLayers();
    host = path.join(scratch.dir, 'gate-host');
    hostState = path.join(scratch.dir, 'gate-state');
    mkdirSync(hostState);
    const docker = new DockerLayout(host, 'debian:qs');
    docker.addImage([image.bottom, image.top], { writable: [image.top] });
    docker.createContainer('g-quiet');
    const podman = new PodmanLayout(host, 'debian:qs');
    podman.addImage([image.bottom, image.top]);
    podman.createContainer('g-podman');
    top = docker.imageDiffs[0]!;
    // The copied layer's folders were just made: a change within a clock tick of a listing is not
    // trusted to move their times, so the test waits that long, as an image layer on a host has.
    await new Promise((r) => setTimeout(r, 2100));
  });

  it('reads the layers in full at first sight, then only their folders, and says since when', async () => {
    const first = await scanAt();
    expect(first.c.findings).toEqual([]);
    expect(first.folders).toBeUndefined();
    const next = await scanAt();
    expect(next.c.findings).toEqual([]);
    expect(next.p.findings).toEqual([]);
    expect(next.folders?.message).toMatch(/last read in full at \d{4}-\d\d-\d\dT/);
  });

  it('sees a file dropped into an image layer at the next scan, without waiting for the full read', async () => {
    writeFileSync(path.join(top, 'usr/bin/implant2'), '\x7fELF', { mode: 0o755 });
    const got = await scanAt();
    expect(got.c.findings.map(brief)).toEqual(['file-added critical /usr/bin/implant2']);
    expect(got.p.findings).toEqual([]);
    rmSync(path.join(top, 'usr/bin/implant2'));
    await new Promise((r) => setTimeout(r, 2100));
    expect((await scanAt()).c.findings).toEqual([]);
  });

  it('sees a file rewritten in place at the next full read (the schedule), not before', async () => {
    const nc = path.join(top, 'usr/bin/nc.openbsd');
    const st = lstatSync(nc);
    const fd = openSync(nc, 'r+');
    writeSync(fd, Buffer.from('EVIL'), 0, 4, 64);
    closeSync(fd);
    utimesSync(nc, st.atime, st.mtime);
    const between = await scanAt();
    // The documented limit: same inode, no folder moved.
    expect(between.c.findings).toEqual([]);
    expect(between.folders).toBeDefined();
    const full = await scanAt(0);
    expect(full.c.findings.map(brief)).toEqual(['file-modified critical /usr/bin/nc.openbsd']);
    expect(full.folders).toBeUndefined();
    // Once found, the drift stands on the scans in between.
    expect((await scanAt()).c.findings.map(brief)).toEqual(['file-modified critical /usr/bin/nc.openbsd']);
  });
});

// Two images whose layers share folders (Docker keeps one folder per chain id): each layer folder
// is checked once per scan, and a change in a shared one is seen by every image over it, however
// the first image's full read re-listed the folder.
describe('image layers shared by two images', () => {
  it('shows a file dropped into a shared layer on the containers of both images', async () => {
    const image = ensureImageLayers();
    const host = path.join(scratch.dir, 'shared-host');
    const hostState = path.join(scratch.dir, 'shared-state');
    mkdirSync(hostState);
    const extra = path.join(scratch.dir, 'extra-layer');
    mkdirSync(path.join(extra, 'opt'), { recursive: true });
    writeFileSync(path.join(extra, 'opt/extra.txt'), 'a third layer\n');
    const docker = new DockerLayout(host, 'debian:qs');
    docker.addImage([image.bottom, image.top], { writable: [image.top] });
    docker.createContainer('s-base');
    // A second image on top of the first one's layers: the same folders, one more layer.
    docker.addImage([extra]);
    docker.createContainer('s-extra');
    const shared = docker.imageDiffs[1]!;
    const scanNow = async () => {
      const got = await scanContainers(host, defaultPolicy(), { collectors: COLLECTORS, stateDir: hostState });
      const of = (n: string): string[] => got.containers.find((c) => c.name === n)!.findings.map(brief);
      return { base: of('s-base'), extra: of('s-extra'), folders: got.warnings.some((w) => w.code === 'CONTAINER_IMAGE_LAYERS_FOLDERS_CHECKED') };
    };
    await new Promise((r) => setTimeout(r, 2100));
    expect(await scanNow()).toEqual({ base: [], extra: [], folders: false });
    expect(await scanNow()).toEqual({ base: [], extra: [], folders: true });
    writeFileSync(path.join(shared, 'usr/bin/implant3'), '\x7fELF', { mode: 0o755 });
    const dropped = ['file-added critical /usr/bin/implant3'];
    expect(await scanNow()).toEqual({ base: dropped, extra: dropped, folders: false });
    // Read in full or by its folders (as the times fall), the next scan shows the same.
    expect(await scanNow()).toMatchObject({ base: dropped, extra: dropped });
  });
});
