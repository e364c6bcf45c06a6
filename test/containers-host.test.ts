// A container host laid out as Docker (overlay2), Podman (containers/storage) and containerd keep
// it on disk, every container made by a real overlay mount over one debootstrap image and changed
// with real tools inside it (apt-get, pip), then discovered and read from the host's disk.
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPolicy } from '../shared/policy.js';
import type { ContainerReport } from '../shared/report.js';
import { COLLECTORS } from '../agent/collect/index.js';
import { discoverContainers, scanContainers } from '../agent/containers/scan-containers.js';
import type { Root } from '../agent/root.js';
import { ContainerScanContext, scanContainer } from '../agent/containers/scan-container.js';
import { aptInChroot, buildDemoDeb } from './helpers/debian-root.js';
import { PIP_DEMO, pipInstallDemo } from './helpers/language-installs.js';
import { ContainerdLayout, DockerLayout, PodmanLayout, brief, ensureImageLayers, overlayMount, scratchDir, writeMountinfo } from './helpers/container-layers.js';
import type { LaidOutContainer, Mounted } from './helpers/container-layers.js';

let scratch: { dir: string; remove: () => void };
let root: string;
const names: Record<string, LaidOutContainer> = {};
let containerdMount: Mounted | undefined;
let dockerdMount: Mounted | undefined;
let reports: ContainerReport[];
let hostWarnings: string[];

function mutate(c: LaidOutContainer, fn: (merged: string) => void): void {
  const m = overlayMount(path.join(scratch.dir, 'mounts'), c.lowers, c.upper);
  try {
    fn(m.merged);
  } finally {
    m.unmount();
  }
}

const byName = (name: string): ContainerReport => reports.find((r) => r.name === name)!;

beforeAll(() => {
  const image = ensureImageLayers();
  scratch = scratchDir();
  root = path.join(scratch.dir, 'host');
  const docker = new DockerLayout(root, 'debian:qs');
  docker.addImage([image.bottom, image.top]);
  const podman = new PodmanLayout(root, 'localhost/debian:qs');
  podman.addImage([image.bottom, image.top]);

  names.web1 = docker.createContainer('web-1', { running: true });
  mutate(names.web1, (m) => {
    pipInstallDemo(m);
    writeFileSync(path.join(m, 'usr/local/bin/qs-tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
  });
  names.apt1 = docker.createContainer('apt-1');
  mutate(names.apt1, (m) => {
    const deb = buildDemoDeb(path.join(m, 'root'), '2.0');
    aptInChroot(m, ['install', '-y', '-q', `/root/${path.basename(deb)}`]);
  });
  names.quiet = docker.createContainer('quiet');
  names.web2 = podman.createContainer('web-2');
  mutate(names.web2, (m) => {
    writeFileSync(path.join(m, 'etc/debian_version'), readFileSync(path.join(m, 'etc/debian_version'))); // same bytes
  });
  names.tmp1 = podman.createContainer('tmp-1', { volatile: true });
  mutate(names.tmp1, (m) => rmSync(path.join(m, 'etc/issue')));
  podman.markRunning(names.tmp1, path.join(root, 'var/lib/containers/storage/overlay', path.basename(path.dirname(names.tmp1.upper)), 'merged'));

  // A running containerd container: its overlay stays mounted while the host is read.
  const containerd = new ContainerdLayout(root);
  containerd.addImage([image.bottom, image.top]);
  const k8s = containerd.createContainer('k8s.io/pod-a');
  names.k8s = k8s;
  containerdMount = overlayMount(path.join(scratch.dir, 'mounts'), k8s.lowers, k8s.upper, { mountPoint: k8s.mountPoint });
  writeFileSync(path.join(k8s.mountPoint, 'usr/local/bin/miner'), '\x7fELF', { mode: 0o755 });
  const dockerd = containerd.createDockerContainer();
  names.dockerd = dockerd;
  dockerdMount = overlayMount(path.join(scratch.dir, 'mounts'), dockerd.lowers, dockerd.upper, { mountPoint: dockerd.mountPoint });
  writeFileSync(path.join(dockerd.mountPoint, 'etc/motd'), 'edited in a running container\n');
  writeMountinfo(root);
});

afterAll(() => {
  containerdMount?.unmount();
  dockerdMount?.unmount();
  scratch?.remove();
});

describe('discovery', () => {
  it('finds every container of every runtime with its image, state and layers', async () => {
    const d = await discoverContainers(root);
    const seen = d.containers.map((c) => `${c.runtime} ${c.name ?? c.id.slice(0, 6)} ${c.image.ref ?? '-'} ${c.state}`).sort();
    expect(seen).toEqual([
      `docker ${names.dockerd!.id.slice(0, 6)} - running`,
      'containerd k8s.io/pod-a - running',
      'docker apt-1 debian:qs stopped',
      'docker quiet debian:qs stopped',
      'docker web-1 debian:qs running',
      'podman tmp-1 localhost/debian:qs running',
      'podman web-2 localhost/debian:qs stopped',
    ].sort());
    const web1 = d.containers.find((c) => c.name === 'web-1')!;
    expect(web1.upper).toBe(names.web1!.upper);
    expect(web1.lowers).toEqual(names.web1!.lowers);
    // Docker's init layer is the container's own, not the image's.
    expect(web1.imageLowers).toEqual(names.web1!.lowers.slice(1));
    expect(d.containers.find((c) => c.name === 'k8s.io/pod-a')!.lowers).toEqual(names.k8s!.lowers);
    // Docker's containerd image store: found in the mount table, its init snapshot kept apart.
    const dockerd = d.containers.find((c) => c.id === names.dockerd!.id)!;
    expect(dockerd.lowers).toEqual(names.dockerd!.lowers);
    expect(dockerd.imageLowers).toEqual(names.dockerd!.lowers.slice(1));
  });
});

describe('each container against its image', () => {
  beforeAll(async () => {
    const scan = await scanContainers(root, defaultPolicy());
    reports = scan.containers;
    hostWarnings = scan.warnings.map((w) => w.code);
  });

  it('reports the pip install as one package finding with its files, and the dropped binary as critical', () => {
    const web1 = byName('web-1');
    const pip = web1.findings.find((f) => f.kind === 'package-added' && f.ecosystem === 'pip')!;
    expect(pip).toMatchObject({ name: PIP_DEMO.normalized, after: PIP_DEMO.version });
    expect(pip.changes!.map((f) => f.path)).toContain(`/usr/local/lib/python3.11/dist-packages/${PIP_DEMO.module}/__init__.py`);
    expect(web1.findings.map(brief)).toContain('file-added critical /usr/local/bin/qs-tool');
    expect(web1.findings.find((f) => f.path === '/usr/local/bin/qs-tool')!.reason).toBe('executable not in the container image');
    expect(web1.summary.status).toBe('drift');
  });

  it('reports a real apt-get install inside a container as the package change it is', () => {
    const apt1 = byName('apt-1');
    const demo = apt1.findings.find((f) => f.ecosystem === 'dpkg' && f.name === 'qs-demo')!;
    expect(demo).toMatchObject({ kind: 'package-changed', before: '1.0', after: '2.0' });
    expect(demo.changes!.map(brief)).toContain('file-modified high /usr/bin/qs-demo');
    expect(demo.changeSet).toBeDefined();
    expect(apt1.changeSets?.some((cs) => cs.tool === 'apt')).toBe(true);
  });

  it('reports nothing for an untouched container, and a same-bytes rewrite is untouched too', () => {
    expect(byName('quiet').findings).toEqual([]);
    expect(byName('web-2').findings).toEqual([]);
    expect(byName('web-2').summary.status).toBe('clean');
  });

  it("reads the transient store's volatile-*.json and a running containerd container through the mount table", () => {
    expect(byName('tmp-1').findings.map(brief)).toEqual(['file-removed high /etc/issue']);
    expect(byName('k8s.io/pod-a').findings.map(brief)).toEqual(['file-added critical /usr/local/bin/miner']);
    expect(byName('k8s.io/pod-a').warnings.map((w) => w.code)).toContain('CONTAINER_IMAGE_UNKNOWN');
    expect(reports.find((r) => r.id === names.dockerd!.id)!.findings.map(brief)).toEqual(['file-modified medium /etc/motd']);
    expect(hostWarnings).toEqual([]);
  });
});

describe('containers that cannot be read whole', () => {
  it('reports a container removed between discovery and its scan as gone', async () => {
    const { containers } = await discoverContainers(root);
    const victim = containers.find((c) => c.name === 'quiet')!;
    const aside = `${path.dirname(victim.upper)}.removed`;
    renameSync(path.dirname(victim.upper), aside);
    try {
      const report = await scanContainer(victim, new ContainerScanContext(defaultPolicy()));
      expect(report.state).toBe('gone');
      expect(report.findings).toEqual([]);
    } finally {
      renameSync(aside, path.dirname(victim.upper));
    }
  });

  it("reports a container removed while the host's scan is under way as gone, and the others as before", async () => {
    const victim = path.dirname(names.web2!.upper);
    const aside = `${victim}.removed`;
    let removed = false;
    // The first package database read (the first container's image) is when `podman rm` strikes.
    const collectors = COLLECTORS.map((c) => (c.ecosystem === 'dpkg' ? { ecosystem: c.ecosystem, collect: (r: Root) => (removed || (renameSync(victim, aside), (removed = true)), c.collect(r)) } : c));
    try {
      const scan = await scanContainers(root, defaultPolicy(), { collectors });
      expect(removed).toBe(true);
      const states = Object.fromEntries(scan.containers.map((c) => [c.name, c.state]));
      expect(states['web-2']).toBe('gone');
      expect(scan.containers.find((c) => c.name === 'web-2')!.warnings.map((w) => w.code)).toContain('CONTAINER_GONE');
      expect(scan.containers.find((c) => c.name === 'web-1')!.findings.map(brief)).toContain('file-added critical /usr/local/bin/qs-tool');
      expect(scan.warnings).toEqual([]);
    } finally {
      renameSync(aside, victim);
    }
  });

  it('reports a container whose writable layer is not a folder as unknown, with a warning, and goes on', async () => {
    const { containers } = await discoverContainers(root);
    const victim = containers.find((c) => c.name === 'web-2')!;
    const aside = `${victim.upper}.aside`;
    renameSync(victim.upper, aside);
    writeFileSync(victim.upper, 'not a layer');
    try {
      const report = await scanContainer(victim, new ContainerScanContext(defaultPolicy()));
      expect(report.state).toBe('unknown');
      expect(report.warnings.map((w) => w.code)).toContain('CONTAINER_UPPER_UNREADABLE');
    } finally {
      rmSync(victim.upper);
      renameSync(aside, victim.upper);
    }
  });

  it('skips half-written metadata with a warning naming the file, and reads the other containers', async () => {
    const config = path.join(root, 'var/lib/docker/containers', names.quiet!.id, 'config.v2.json');
    const layers = path.join(root, 'var/lib/containers/storage/overlay-layers/volatile-layers.json');
    const [configText, layersText] = [readFileSync(config, 'utf8'), readFileSync(layers, 'utf8')];
    writeFileSync(config, configText.slice(0, 40));
    writeFileSync(layers, layersText.replace('"created"', '"flags":{"incomplete":true},"created"'));
    try {
      const d = await discoverContainers(root);
      expect(d.containers.map((c) => c.name).sort()).toEqual(['apt-1', 'k8s.io/pod-a', 'web-1', 'web-2', undefined]);
      const warned = d.warnings.map((w) => `${w.code} ${path.basename(w.path ?? '')}`);
      expect(warned).toContain('CONTAINER_METADATA_INVALID config.v2.json');
      expect(d.warnings.find((w) => w.code === 'CONTAINER_METADATA_MISSING')!.message).toMatch(/still being written/);
    } finally {
      writeFileSync(config, configText);
      writeFileSync(layers, layersText);
    }
  });
});
