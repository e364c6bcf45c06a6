// 200 containers of one image on one host, each a real overlay mount with a small change: every
// one is reported, the image's package databases are read once for all of them, and what is read
// per container is its own change, not the image.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COLLECTORS } from '../agent/collect/index.js';
import type { Collector } from '../agent/collect/types.js';
import { scanContainers } from '../agent/containers/scan-containers.js';
import type { ContainersScan } from '../agent/containers/scan-containers.js';
import { defaultPolicy } from '../shared/policy.js';
import { buildContainerHost, ensureImageLayers, scratchDir } from './helpers/container-layers.js';

const COUNT = 200;
let scratch: { dir: string; remove: () => void };
let scan: ContainersScan;
let collections = 0;

beforeAll(async () => {
  const image = ensureImageLayers();
  scratch = scratchDir();
  const root = path.join(scratch.dir, 'host');
  buildContainerHost(root, scratch.dir, [image.bottom, image.top], COUNT, (i, m) => {
    writeFileSync(path.join(m, `etc/app-${i}.conf`), `replicas=${i}\n`);
    if (i % 20 === 0) {
      mkdirSync(path.join(m, 'usr/local/bin'), { recursive: true });
      writeFileSync(path.join(m, 'usr/local/bin/hotfix'), '#!/bin/sh\n', { mode: 0o755 });
    }
  });
  // Counts every read of a package database (the dpkg collector stands for all of them).
  const counting: Collector[] = COLLECTORS.map((c) => (c.ecosystem === 'dpkg' ? { ecosystem: c.ecosystem, collect: (r) => (collections++, c.collect(r)) } : c));
  scan = await scanContainers(root, defaultPolicy(), { collectors: counting });
}, 300_000);
afterAll(() => scratch?.remove());

describe('200 containers of one image on one host', () => {
  it('reports every container with its own change', () => {
    expect(scan.containers).toHaveLength(COUNT);
    expect(scan.warnings).toEqual([]);
    const byName = new Map(scan.containers.map((c) => [c.name, c]));
    for (let i = 0; i < COUNT; i++) {
      const c = byName.get(`c-${i}`)!;
      const paths = c.findings.map((f) => `${f.kind} ${f.severity} ${f.path}`).sort();
      const expected = [`file-added medium /etc/app-${i}.conf`, ...(i % 20 === 0 ? ['file-added critical /usr/local/bin/hotfix'] : [])].sort();
      expect(paths, c.name).toEqual(expected);
    }
    expect(scan.containers.filter((c) => c.runtime === 'docker')).toHaveLength(COUNT / 2);
  });

  it("reads the image's package databases once per copy of its layers, not once per container", () => {
    // Docker and Podman each keep their own copy of the image's layers: two reads for 200 containers.
    expect(collections).toBe(2);
  });

  it("reads no package database again on the next scan: the image's packages come from the state folder", async () => {
    const state = path.join(scratch.dir, 'state');
    mkdirSync(state, { recursive: true });
    const counting: Collector[] = COLLECTORS.map((c) => (c.ecosystem === 'dpkg' ? { ecosystem: c.ecosystem, collect: (r) => (collections++, c.collect(r)) } : c));
    collections = 0;
    const first = await scanContainers(path.join(scratch.dir, 'host'), defaultPolicy(), { collectors: counting, stateDir: state });
    expect(collections).toBe(2);
    const next = await scanContainers(path.join(scratch.dir, 'host'), defaultPolicy(), { collectors: counting, stateDir: state });
    expect(collections).toBe(2);
    expect(next.containers.map((c) => c.findings)).toEqual(first.containers.map((c) => c.findings));
  });

  it('reads what the containers changed, not the image', () => {
    const entries = scan.containers.reduce((n, c) => n + c.stats!.entries, 0);
    const bytes = scan.containers.reduce((n, c) => n + c.stats!.bytesRead, 0);
    expect(entries).toBeLessThan(COUNT * 12);
    expect(bytes).toBeLessThan(COUNT * 1024);
  });
});
