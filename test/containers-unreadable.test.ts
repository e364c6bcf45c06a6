// A writable layer the agent may not read: root reads every folder whatever its mode, so the scan
// runs in a child process that dropped the capabilities that let it (setpriv: CAP_DAC_OVERRIDE and
// CAP_DAC_READ_SEARCH, as an agent confined by its service manager or an LSM runs), over a host
// laid out as Docker keeps it (one copy of the image: the first scan reads it whole), where one container's writable layer is mode 000 and
// another's has one folder mode 000. Each is reported with its own warning; the other containers
// are read as ever. (Still uid 0, so the repository and the cached layers stay readable wherever
// CI checked them out.)
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContainersScan } from '../agent/containers/scan-containers.js';
import type { ContainerReport } from '../shared/report.js';
import { DockerLayout, brief, ensureImageLayers, overlayMount, scratchDir } from './helpers/container-layers.js';
import type { LaidOutContainer } from './helpers/container-layers.js';
import { REPO } from './helpers/processes.js';

let scratch: { dir: string; remove: () => void };
let root: string;
let script: string;
const made: Record<string, LaidOutContainer> = {};

/** The agent's container scan of `root` in a child process: as root without the capabilities that bypass file modes, or as plain root. */
function scanAs(user: 'confined' | 'root', state: string): { scan: ContainersScan; byName: (n: string) => ContainerReport } {
  const node = [process.execPath, '--import', 'tsx', script, root, state];
  const caps = '-dac_override,-dac_read_search';
  const argv = user === 'root' ? node : ['setpriv', `--inh-caps=${caps}`, `--bounding-set=${caps}`, ...node];
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  const scan = JSON.parse(r.stdout) as ContainersScan;
  return { scan, byName: (n) => scan.containers.find((c) => c.name === n)! };
}

beforeAll(() => {
  const image = ensureImageLayers();
  scratch = scratchDir();
  root = path.join(scratch.dir, 'host');
  const docker = new DockerLayout(root, 'debian:qs');
  docker.addImage([image.bottom, image.top]);
  const drop = (c: LaidOutContainer, file: string): void => {
    const m = overlayMount(path.join(scratch.dir, 'mounts'), c.lowers, c.upper);
    try {
      writeFileSync(path.join(m.merged, file), '\x7fELF', { mode: 0o755 });
      mkdirSync(path.join(m.merged, 'etc/app'), { recursive: true });
      writeFileSync(path.join(m.merged, 'etc/app/secret.conf'), 'key=1\n');
    } finally {
      m.unmount();
    }
  };
  made.ok = docker.createContainer('d-ok');
  drop(made.ok, 'usr/local/bin/tool-d');
  made.locked = docker.createContainer('d-locked');
  drop(made.locked, 'usr/local/bin/tool-l');
  made.partly = docker.createContainer('d-partly');
  drop(made.partly, 'usr/local/bin/tool-p');
  made.quiet = docker.createContainer('d-quiet');
  chmodSync(made.locked.upper, 0o000);
  chmodSync(path.join(made.partly.upper, 'etc/app'), 0o000);
  script = path.join(scratch.dir, 'scan-containers.mts');
  writeFileSync(
    script,
    [
      `import { scanContainers } from ${JSON.stringify(path.join(REPO, 'agent/containers/scan-containers.ts'))};`,
      `import { defaultPolicy } from ${JSON.stringify(path.join(REPO, 'shared/policy.ts'))};`,
      `const [root, state] = process.argv.slice(2);`,
      `process.stdout.write(JSON.stringify(await scanContainers(root, defaultPolicy(), { stateDir: state })));`,
    ].join('\n'),
  );
});

afterAll(() => scratch?.remove());

describe('writable layers that give a permission error', () => {
  let confined: ReturnType<typeof scanAs>;

  beforeAll(() => {
    const state = path.join(scratch.dir, 'state-confined');
    mkdirSync(state);
    confined = scanAs('confined', state);
  });

  it('reports the container whose writable layer cannot be read as unknown, with a warning naming the layer', () => {
    const locked = confined.byName('d-locked');
    expect(locked.state).toBe('unknown');
    expect(locked.findings).toEqual([]);
    const w = locked.warnings.find((x) => x.code === 'CONTAINER_UPPER_UNREADABLE');
    expect(w?.path).toBe(made.locked!.upper);
    expect(w?.message).toMatch(/permission denied|EACCES/i);
  });

  it('reads the rest of a writable layer one folder of which cannot be read, and names that folder', () => {
    const partly = confined.byName('d-partly');
    expect(partly.state).not.toBe('unknown');
    expect(partly.findings.map(brief)).toContain('file-added critical /usr/local/bin/tool-p');
    expect(partly.warnings.filter((x) => x.code === 'CONTAINER_PATH_UNREADABLE').map((x) => x.path)).toEqual(['/etc/app']);
  });

  it('reads every other container as ever', () => {
    expect(confined.scan.containers.map((c) => c.name).sort()).toEqual(['d-locked', 'd-ok', 'd-partly', 'd-quiet']);
    expect(confined.byName('d-ok').findings.map(brief)).toContain('file-added critical /usr/local/bin/tool-d');
    expect(confined.byName('d-quiet').findings).toEqual([]);
  });

  it('is a permission error, not a broken layer: root reads the same layers whole', () => {
    const state = path.join(scratch.dir, 'state-root');
    mkdirSync(state);
    const asRoot = scanAs('root', state);
    expect(asRoot.byName('d-locked').findings.map(brief)).toContain('file-added critical /usr/local/bin/tool-l');
    expect(asRoot.byName('d-partly').findings.map(brief).join('\n')).toMatch(/^file-added \w+ \/etc\/app\/secret\.conf$/m);
  });
});
