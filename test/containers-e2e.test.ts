// The Russian doll end to end: a container host with a Docker-layout and a Podman-layout container
// of one image, one of which had a real `pip install` and a dropped binary; the real agent CLI
// (`scan --containers --send`) reads both from the host's disk and a real server on loopback shows
// the host, its two containers as its children, one a pet and the other cattle, each with its own
// findings and triage; a container removed from the host is shown gone.
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeAgentConfig } from '../agent/deliver/config.js';
import { enrollAgent } from '../agent/deliver/enroll.js';
import type { ContainerSummary, HostFinding, HostSummary } from '../shared/api.js';
import { parseReport } from '../shared/report.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { callApi } from './helpers/api.js';
import { DockerLayout, PodmanLayout, ensureImageLayers, overlayMount, scratchDir } from './helpers/container-layers.js';
import type { LaidOutContainer } from './helpers/container-layers.js';
import { PIP_DEMO, pipInstallDemo } from './helpers/language-installs.js';
import { runCliAsync } from './helpers/processes.js';

let scratch: { dir: string; remove: () => void };
let server: RunningServer;
let analyst: string;
let hostId: string;
let root: string;
let state: string;
let manifest: string;
let web1: LaidOutContainer;

const api = (method: string, route: string, body?: unknown) => callApi(server.url, method, route, analyst, body);
const agent = (args: string[]) => runCliAsync('agent', args);
const scanAndSend = async (): Promise<ReturnType<typeof parseReport>> => {
  const r = await agent(['scan', '--root', root, '--manifest', manifest, '--containers', '--send', '--state', state, '--timeout', '30', '-q', '--json']);
  expect(r.stderr).toMatch(/delivered/);
  expect(r.code, r.stderr).toBe(1); // a container drifted
  return parseReport(JSON.parse(r.stdout), 'scan output');
};

beforeAll(async () => {
  const image = ensureImageLayers();
  scratch = scratchDir();
  root = path.join(scratch.dir, 'host');
  const docker = new DockerLayout(root, 'debian:qs');
  docker.addImage([image.bottom, image.top]);
  const podman = new PodmanLayout(root, 'debian:qs');
  podman.addImage([image.bottom, image.top]);
  web1 = docker.createContainer('web-1', { running: true });
  const m = overlayMount(path.join(scratch.dir, 'mounts'), web1.lowers, web1.upper);
  try {
    pipInstallDemo(m.merged);
    writeFileSync(path.join(m.merged, 'usr/local/bin/qs-tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
  } finally {
    m.unmount();
  }
  podman.createContainer('web-2');

  server = await startServer({ db: path.join(scratch.dir, 'server.db'), port: 0, host: '127.0.0.1' });
  analyst = await server.store.createApiToken('analyst', new Date());
  state = path.join(scratch.dir, 'state');
  const config = await enrollAgent(server.url, await server.store.createEnrollSecret(new Date()), 'container-host-1');
  await writeAgentConfig(path.join(state, 'agent.json'), config);
  hostId = config.agentId;
  manifest = path.join(scratch.dir, 'host.manifest.json');
  const made = await agent(['manifest', '--root', root, '--name', 'container-host', '--image-version', '1', '--out', manifest, '-q']);
  expect(made.code, made.stderr).toBe(0);
});

afterAll(async () => {
  await server?.close();
  scratch?.remove();
});

describe('a container host with a Docker and a Podman container of one image', () => {
  let containers: ContainerSummary[];

  beforeAll(async () => {
    const report = await scanAndSend();
    expect(report.summary.status).toBe('clean'); // the host itself did not drift
    expect(report.containers).toHaveLength(2);
    containers = (await api('GET', `/api/v1/hosts/${hostId}/containers`)).json.containers;
  });

  it('shows the host once, with its two containers as its children', async () => {
    const hosts = (await api('GET', '/api/v1/hosts')).json.hosts as HostSummary[];
    expect(hosts.map((h) => h.id)).toEqual([hostId]);
    expect(hosts[0]!.status).toBe('cattle');
    expect(containers.map((c) => `${c.runtime} ${c.name} ${c.image.ref} ${c.state} ${c.status}`).sort()).toEqual([
      'docker web-1 debian:qs running pet',
      'podman web-2 debian:qs stopped cattle',
    ]);
    for (const c of containers) expect(c.host).toEqual({ id: hostId, hostname: hosts[0]!.hostname });
  });

  it("keeps the pet container's own findings: the pip package with its files, and the critical dropped executable", async () => {
    const pet = containers.find((c) => c.name === 'web-1')!;
    const findings = (await api('GET', `/api/v1/hosts/${pet.id}/findings`)).json.findings as HostFinding[];
    const pip = findings.find((f) => f.kind === 'package-added' && f.ecosystem === 'pip')!;
    expect(pip.name).toBe(PIP_DEMO.normalized);
    expect(JSON.stringify(pip.detail)).toContain(`${PIP_DEMO.module}/__init__.py`);
    const dropped = findings.find((f) => f.path === '/usr/local/bin/qs-tool')!;
    expect(dropped).toMatchObject({ kind: 'file-added', severity: 'critical' });
    const cattle = containers.find((c) => c.name === 'web-2')!;
    expect((await api('GET', `/api/v1/hosts/${cattle.id}/findings`)).json.findings).toEqual([]);
  });

  it('answers which containers of an image drifted, and on which hosts', async () => {
    const drifted = (await api('GET', '/api/v1/containers?image=debian:qs&drifted=true')).json.containers as ContainerSummary[];
    expect(drifted.map((c) => `${c.host.id} ${c.name}`)).toEqual([`${hostId} web-1`]);
    expect((await api('GET', '/api/v1/containers?image=debian:other')).json.containers).toEqual([]);
    const bad = await api('GET', '/api/v1/containers?drifted=maybe');
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/drifted/);
  });

  it("triages a container's finding on the container alone", async () => {
    const pet = containers.find((c) => c.name === 'web-1')!;
    const findings = (await api('GET', `/api/v1/hosts/${pet.id}/findings`)).json.findings as HostFinding[];
    for (const f of findings) {
      const r = await api('POST', `/api/v1/hosts/${pet.id}/findings/${f.id}/approve`, { reason: 'hotfix agreed with the app team' });
      expect(r.status, JSON.stringify(r.json)).toBeLessThan(300);
    }
    const after = (await api('GET', `/api/v1/hosts/${hostId}/containers`)).json.containers as ContainerSummary[];
    expect(after.find((c) => c.name === 'web-1')!.status).toBe('cattle');
  });

  it('shows a container removed from the host as gone, and leaves it out of the fleet view', async () => {
    // What `docker rm` does on disk: the container's folder and its layers go.
    rmSync(path.join(root, 'var/lib/docker/containers', web1.id), { recursive: true });
    rmSync(path.dirname(web1.upper), { recursive: true });
    const report = await agent(['scan', '--root', root, '--manifest', manifest, '--containers', '--send', '--state', state, '--timeout', '30', '-q', '--json']);
    expect(report.stderr).toMatch(/delivered/);
    const all = (await api('GET', `/api/v1/hosts/${hostId}/containers`)).json.containers as ContainerSummary[];
    const gone = all.find((c) => c.name === 'web-1')!;
    expect(gone.state).toBe('gone');
    expect(gone.goneAt).not.toBeNull();
    const fleet = (await api('GET', '/api/v1/containers?image=debian:qs')).json.containers as ContainerSummary[];
    expect(fleet.map((c) => c.name)).toEqual(['web-2']);
    expect(((await api('GET', '/api/v1/containers?gone=true')).json.containers as ContainerSummary[]).length).toBe(2);
  });
});
