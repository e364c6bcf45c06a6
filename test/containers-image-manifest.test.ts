// A container image's manifest, built from its layer folders by the agent CLI on a clean copy of the
// image and uploaded to the server, is what the containers of that image are held to: on a host
// whose image layer was changed before the agent ever saw it (first sight would take the change for
// the image), the real agent (`scan --containers --send`) fetches the uploaded manifest and reports
// the change on the container, which the server then shows as a pet.
import { cpSync, lstatSync, mkdirSync, readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { writeAgentConfig } from '../agent/deliver/config.js';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { discoverContainers } from '../agent/containers/scan-containers.js';
import type { ContainerSummary } from '../shared/api.js';
import type { AgentConfig } from '../shared/protocol.js';
import { MANIFEST_SCHEMA } from '../shared/manifest.js';
import type { Manifest } from '../shared/manifest.js';
import { defaultPolicy } from '../shared/policy.js';
import { parseReport } from '../shared/report.js';
import type { ContainerReport } from '../shared/report.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { callApi } from './helpers/api.js';
import { DockerLayout, ensureImageLayers, scratchDir } from './helpers/container-layers.js';
import { runCliAsync } from './helpers/processes.js';
import { STORE_BACKENDS } from './helpers/store-backends.js';
import type { FreshStore } from './helpers/store-backends.js';

let scratch: { dir: string; remove: () => void };
let server: RunningServer;
let analyst: string;
let agentToken: string;
let root: string;
let hostManifest: string;
let imageId: string;
let image: { bottom: string; top: string };
let cacheCtimes: number[];

const agent = (args: string[]) => runCliAsync('agent', args);
const containerOf = async (state: string, send: boolean): Promise<ContainerReport> => {
  const r = await agent(['scan', '--root', root, '--manifest', hostManifest, '--containers', '--state', state, '--timeout', '30', '-q', '--json', ...(send ? ['--send'] : [])]);
  expect(r.code, r.stderr).toBeLessThan(2);
  return parseReport(JSON.parse(r.stdout), 'scan output').containers!.find((c) => c.name === 'quiet')!;
};
const cacheFiles = (): string[] => [path.join(image.bottom, 'etc/passwd'), path.join(image.top, 'usr/bin/nc.openbsd')];

beforeAll(async () => {
  image = ensureImageLayers();
  cacheCtimes = cacheFiles().map((f) => lstatSync(f).ctimeMs);
  scratch = scratchDir();
  root = path.join(scratch.dir, 'host');
  const docker = new DockerLayout(root, 'debian:qs');
  docker.addImage([image.bottom, image.top], { writable: [image.top] });
  docker.createContainer('quiet');
  // Changed on this host before any agent read it: a new file renamed over nc, its times put back.
  const nc = path.join(docker.imageDiffs[0]!, 'usr/bin/nc.openbsd');
  const st = lstatSync(nc);
  writeFileSync(`${nc}.new`, Buffer.concat([readFileSync(nc), Buffer.from('#backdoor')]), { mode: 0o755 });
  utimesSync(`${nc}.new`, st.atime, st.mtime);
  renameSync(`${nc}.new`, nc);
  imageId = (await discoverContainers(root)).containers[0]!.image.id!;

  server = await startServer({ db: path.join(scratch.dir, 'server.db'), port: 0, host: '127.0.0.1' });
  analyst = await server.store.createApiToken('analyst', new Date());
  const config = await enrollAgent(server.url, await server.store.createEnrollSecret(new Date()), 'image-host-1');
  agentToken = config.token;
  mkdirSync(path.join(scratch.dir, 'sent'));
  await writeAgentConfig(path.join(scratch.dir, 'sent', 'agent.json'), config);
  hostManifest = path.join(scratch.dir, 'host.manifest.json');
  const made = await agent(['manifest', '--root', root, '--name', 'image-host', '--image-version', '1', '--out', hostManifest, '-q']);
  expect(made.code, made.stderr).toBe(0);
});

afterAll(async () => {
  await server?.close();
  scratch?.remove();
});

describe("a container image's manifest uploaded to the server", () => {
  let uploaded: Manifest;

  it("is built by the agent from the image's layer folders, never mounting them, and uploaded", async () => {
    const out = path.join(scratch.dir, 'image.manifest.json');
    const r = await agent(['manifest', '--image-layers', `${image.top}:${image.bottom}`, '--name', 'debian:qs', '--image-version', imageId, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/image docker\.io\/library\/debian:qs sha256:[0-9a-f]{64}, \d+ packages, \d+ paths, from 2 layers/);
    uploaded = JSON.parse(readFileSync(out, 'utf8')) as Manifest;
    expect(uploaded.packages.some((p) => p.name === 'netcat-openbsd')).toBe(true);
    const nc = uploaded.files.find((f) => f.path === '/usr/bin/nc.openbsd')!;
    expect(nc.sha256).toMatch(/^[0-9a-f]{64}$/);
    // The top layer's whiteout and opaque folder, as the kernel made them, are resolved.
    expect(uploaded.files.some((f) => f.path === '/etc/issue.net')).toBe(false);
    expect(uploaded.files.filter((f) => f.path.startsWith('/usr/share/doc/less/')).map((f) => f.path)).toEqual(['/usr/share/doc/less/README.slim']);
    const up = await callApi(server.url, 'POST', '/api/v1/images', analyst, uploaded);
    expect(up.status, JSON.stringify(up.json)).toBe(201);
  });

  it('without it, the first scan takes the changed layer for the image', async () => {
    const alone = path.join(scratch.dir, 'alone');
    mkdirSync(alone);
    expect((await containerOf(alone, false)).findings).toEqual([]);
  });

  it('with it, the container is held to the uploaded manifest: the changed layer file is drift, on the server too', async () => {
    const c = await containerOf(path.join(scratch.dir, 'sent'), true);
    expect(c.findings.map((f) => `${f.kind} ${f.severity} ${f.path}`)).toEqual(['file-modified critical /usr/bin/nc.openbsd']);
    expect(c.findings[0]!.reason).toMatch(/differ from the manifest uploaded for the image/);
    const pets = await callApi(server.url, 'GET', '/api/v1/containers?image=debian:qs&status=pet', analyst);
    expect((pets.json.containers as ContainerSummary[]).map((x) => x.name)).toEqual(['quiet']);
  });

  it("keeps to the kept seal when the server accepts the connection and never answers: a warning, within the manifest timeout", async () => {
    // A server that drops everything after the handshake: a real loopback socket, never written to.
    const held: Socket[] = [];
    const silent = createNetServer((sock) => held.push(sock));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const state = path.join(scratch.dir, 'silent');
    cpSync(path.join(scratch.dir, 'sent'), state, { recursive: true });
    const config = JSON.parse(readFileSync(path.join(state, 'agent.json'), 'utf8')) as AgentConfig;
    await writeAgentConfig(path.join(state, 'agent.json'), { ...config, server: `http://127.0.0.1:${(silent.address() as AddressInfo).port}` });
    try {
      const t0 = Date.now();
      const r = await agent(['scan', '--root', root, '--manifest', hostManifest, '--containers', '--state', state, '--manifest-timeout', '1', '-q', '--json']);
      const took = Date.now() - t0;
      expect(r.code, r.stderr).toBeLessThan(2);
      expect(held.length).toBeGreaterThan(0);
      const report = parseReport(JSON.parse(r.stdout), 'scan output');
      const w = report.warnings.filter((x) => x.code === 'CONTAINER_IMAGE_MANIFEST_UNAVAILABLE');
      expect(w.map((x) => x.message)).toEqual([expect.stringMatching(/no answer within 1 s; the image's kept seal is used/)]);
      // The kept seal is the manifest uploaded before: the changed layer file is still drift.
      expect(report.containers!.find((c) => c.name === 'quiet')!.findings.map((f) => `${f.kind} ${f.severity} ${f.path}`)).toEqual(['file-modified critical /usr/bin/nc.openbsd']);
      // One timeout, not the 300 s of a fetch without one; the rest is the scan itself.
      expect(took).toBeLessThan(20_000);
    } finally {
      for (const sock of held) sock.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('is served to agents only, by reference (normalized) and image id; a wrong query is named', async () => {
    const route = (q: string) => `/api/v1/agent/image-manifest?${q}`;
    const got = await callApi(server.url, 'GET', route(`name=docker.io/library/debian:qs&version=${imageId}`), agentToken);
    expect(got.status).toBe(200);
    expect((got.json as Manifest).files).toHaveLength(uploaded.files.length);
    expect((await callApi(server.url, 'GET', route(`name=debian:qs&version=sha256:${'0'.repeat(64)}`), agentToken)).status).toBe(404);
    const bad = await callApi(server.url, 'GET', route(`version=${imageId}`), agentToken);
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/query: name: .*expected string/);
    const long = await callApi(server.url, 'GET', route(`name=${'a'.repeat(600)}&version=x`), agentToken);
    expect(long.status).toBe(400);
    expect(long.json.error.message).toMatch(/name: .*512/);
    expect((await callApi(server.url, 'GET', route(`name=debian:qs&version=${imageId}`), analyst)).status).toBe(401);
  });

  it("leaves the cached layers' inodes as they were: the test's layers are bound read-only or copied", () => {
    expect(cacheFiles().map((f) => lstatSync(f).ctimeMs)).toEqual(cacheCtimes);
  });
});

describe.each(STORE_BACKENDS)('uploaded image manifests in the $name store', (backend) => {
  let db: FreshStore;
  beforeEach(async () => {
    db = await backend.fresh();
  });
  afterEach(async () => db.drop());

  it('keeps each upload per image name and version, and has none for an image only announced', async () => {
    const m: Manifest = { schema: MANIFEST_SCHEMA, image: { name: 'docker.io/library/debian:qs', version: 'sha256:aa', createdAt: new Date(0).toISOString(), source: 'root' }, policy: defaultPolicy(), packages: [], files: [{ path: '/etc', type: 'dir', mode: '0755', uid: 0, gid: 0 }] };
    expect(await db.store.uploadedManifest('docker.io/library/debian:qs', 'sha256:aa')).toBeNull();
    await db.store.saveManifest(m, new Date());
    expect(JSON.parse((await db.store.uploadedManifest('docker.io/library/debian:qs', 'sha256:aa'))!)).toEqual(m);
    expect(await db.store.uploadedManifest('docker.io/library/debian:qs', 'sha256:bb')).toBeNull();
    await db.store.saveManifest({ ...m, files: [] }, new Date());
    expect(JSON.parse((await db.store.uploadedManifest('docker.io/library/debian:qs', 'sha256:aa'))!).files).toEqual([]);
  });
});
