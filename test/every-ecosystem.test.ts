import { readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../shared/manifest.js';
import { parseReport } from '../shared/report.js';
import type { Finding, Report } from '../shared/report.js';
import { defaultPolicy } from '../shared/policy.js';
import { manifestFromObservation } from '../agent/manifest/build.js';
import { observe } from '../agent/fingerprint/observe.js';
import { openRoot } from '../agent/root.js';
import { scanRoot } from '../agent/diff/scan.js';
import { manifestFromKiwi, parseKiwiPackages, parseKiwiVerified } from '../agent/manifest/import-kiwi.js';
import { manifestFromSbom, parseSbom } from '../agent/manifest/import-sbom.js';
import { parseDpkgStatus, installedPackages } from '../agent/collect/dpkg.js';
import { aptInChroot, buildDemoDeb, copyTree, ensureWithLanguages } from './helpers/debian-root.js';
import { CPAN_DEMO, GEM_DEMO, NPM_DEMO, PIP_DEMO, cpanInstallDemo, gemInstallDemo, npmInstallDemo, pipInstallDemo } from './helpers/language-installs.js';

const trees: Array<{ remove: () => void }> = [];
afterAll(() => trees.forEach((t) => t.remove()));

function copy(base: string): string {
  const t = copyTree(base);
  trees.push(t);
  return t.dir;
}

async function manifestOf(dir: string): Promise<Manifest> {
  const root = await openRoot(dir);
  const policy = defaultPolicy();
  return manifestFromObservation(await observe(root, policy), policy, { name: 'langs', version: '1' }, new Date());
}

async function scan(dir: string, manifest: Manifest): Promise<Report> {
  return scanRoot(await openRoot(dir), manifest, { hostname: 'test' });
}

function top(report: Report, ecosystem: string, name: string): Finding {
  const found = report.findings.filter((f) => f.ecosystem === ecosystem && f.name === name);
  expect(found, `${ecosystem} ${name}`).toHaveLength(1);
  return found[0]!;
}

/** KIWI's deb-image .packages line for each installed dpkg package, as KIWI writes it. */
function kiwiPackagesOf(dir: string): string {
  const pkgs = installedPackages(parseDpkgStatus(readFileSync(path.join(dir, 'var/lib/dpkg/status'), 'utf8')));
  return `${pkgs
    .map((p) => `${p.name}|None|${p.version}|None|${p.arch}|None|None`)
    .sort()
    .join('\n')}\n`;
}

// Each scan hashes the whole ~460 MB tree; under a loaded CI machine that takes a while.
describe('a host changed by apt, pip, gem, cpan and npm', { timeout: 180_000 }, () => {
  let base: string;
  let manifest: Manifest;
  let drifted: string;
  let report: Report;

  beforeAll(async () => {
    base = ensureWithLanguages();
    manifest = await manifestOf(base);
    drifted = copy(base);
    // One apt command installs a package; one upgrades the local qs-demo; one removes less.
    aptInChroot(drifted, ['install', '-y', '-q', '--no-install-recommends', 'netcat-openbsd']);
    const deb = buildDemoDeb(path.join(drifted, 'root'), '1.1');
    aptInChroot(drifted, ['install', '-y', '-q', `/root/${path.basename(deb)}`]);
    aptInChroot(drifted, ['remove', '-y', '-q', 'less']);
    pipInstallDemo(drifted);
    gemInstallDemo(drifted);
    cpanInstallDemo(drifted);
    npmInstallDemo(drifted);
    report = await scan(drifted, manifest);
  });

  it('reports each package operation as exactly one top-level finding', () => {
    const summary = report.findings.map((f) => [f.kind, f.ecosystem, f.name, f.before, f.after]);
    expect(summary).toHaveLength(7);
    expect(summary).toEqual(
      expect.arrayContaining([
        ['package-added', 'dpkg', 'netcat-openbsd', undefined, expect.stringMatching(/^1\.2/)],
        ['package-changed', 'dpkg', 'qs-demo', '1.0', '1.1'],
        ['package-removed', 'dpkg', 'less', expect.any(String), undefined],
        ['package-added', 'pip', PIP_DEMO.normalized, undefined, PIP_DEMO.version],
        ['package-added', 'gem', GEM_DEMO.name, undefined, GEM_DEMO.version],
        ['package-added', 'cpan', CPAN_DEMO.name, undefined, CPAN_DEMO.version],
        ['package-added', 'npm', NPM_DEMO.name, undefined, NPM_DEMO.version],
      ]),
    );
    expect(report.summary.changeSets).toBe(7);
    expect(report.summary.status).toBe('drift');
    // What goes over the wire still passes the shared report schema.
    expect(() => parseReport(JSON.parse(JSON.stringify(report)), 'report')).not.toThrow();
  });

  it('nests the files each install brought under its finding, with their owner', () => {
    const paths = (f: Finding): string[] => (f.changes ?? []).map((c) => c.path!);
    const owners = (f: Finding): Set<string | undefined> => new Set((f.changes ?? []).filter((c) => c.owner).map((c) => c.owner!.name));
    const nc = top(report, 'dpkg', 'netcat-openbsd');
    expect(paths(nc)).toContain('/usr/bin/nc.openbsd');
    expect(paths(nc)).toContain('/etc/alternatives/nc'); // made by its maintainer script
    const pip = top(report, 'pip', PIP_DEMO.normalized);
    expect(paths(pip)).toContain(`/usr/local/lib/python3.11/dist-packages/${PIP_DEMO.module}/__init__.py`);
    expect(owners(pip)).toEqual(new Set([PIP_DEMO.normalized]));
    expect(paths(top(report, 'gem', GEM_DEMO.name))).toContain('/usr/local/bin/qsgem');
    const cpan = top(report, 'cpan', CPAN_DEMO.name);
    expect(paths(cpan)).toEqual(expect.arrayContaining(['/usr/local/share/perl/5.36.0/Qs/Fix.pm', '/usr/local/bin/qs-fix']));
    expect(owners(cpan)).toEqual(new Set([CPAN_DEMO.name]));
    const npm = top(report, 'npm', NPM_DEMO.name);
    expect(paths(npm)).toEqual(expect.arrayContaining([`/usr/local/lib/node_modules/${NPM_DEMO.name}/cli.js`, `/usr/local/bin/${NPM_DEMO.bin}`]));
    const less = top(report, 'dpkg', 'less');
    expect(paths(less)).toEqual(expect.arrayContaining(['/usr/bin/less', '/etc/alternatives/pager']));
    const upgraded = top(report, 'dpkg', 'qs-demo');
    expect(paths(upgraded)).toContain('/usr/bin/qs-demo');
  });

  it('names the change set behind each finding from the package managers own records', () => {
    const sets = new Map((report.changeSets ?? []).map((cs) => [cs.id, cs]));
    const setOf = (eco: string, name: string) => sets.get(top(report, eco, name).changeSet ?? '');
    expect(setOf('dpkg', 'netcat-openbsd')).toMatchObject({ tool: 'apt', command: expect.stringContaining('install -y -q --no-install-recommends netcat-openbsd') });
    expect(setOf('dpkg', 'qs-demo')).toMatchObject({ tool: 'apt', command: expect.stringContaining('qs-demo_1.1_all.deb') });
    expect(setOf('dpkg', 'less')).toMatchObject({ tool: 'apt', command: expect.stringContaining('remove -y -q less') });
    expect(setOf('pip', PIP_DEMO.normalized)).toMatchObject({ tool: 'pip' });
    expect(setOf('gem', GEM_DEMO.name)).toMatchObject({ tool: 'gem' });
    expect(setOf('cpan', CPAN_DEMO.name)).toMatchObject({ tool: 'cpan' });
    expect(setOf('npm', NPM_DEMO.name)).toMatchObject({ tool: 'npm' });
    for (const f of report.findings) for (const c of f.changes ?? []) expect(c.changeSet).toBe(f.changeSet);
  });

  it('reports a pip package shipped by dpkg once, as the dpkg package', async () => {
    const obs = await observe(await openRoot(drifted), defaultPolicy());
    expect(obs.packages.some((p) => p.ecosystem === 'dpkg' && p.name === 'python3-yaml')).toBe(true);
    expect(obs.packages.filter((p) => p.ecosystem === 'pip').map((p) => p.name)).toEqual([PIP_DEMO.normalized]);
    const distInfo = [...obs.owned.entries()].filter(([p]) => /\/PyYAML-[^/]+\.(dist|egg)-info/.test(p));
    expect(distInfo.length).toBeGreaterThan(0);
    for (const [, o] of distInfo) expect(o.owner).toEqual({ ecosystem: 'dpkg', name: 'python3-yaml' });
    // Ruby's default gems are libruby's files: not gem installs either.
    expect(obs.packages.filter((p) => p.ecosystem === 'gem').map((p) => p.name)).toEqual([GEM_DEMO.name]);
  });

  it('reports nothing for an untouched copy of the image', async () => {
    const untouched = copy(base);
    const clean = await scan(untouched, manifest);
    expect(clean.findings).toEqual([]);
    expect(clean.summary.status).toBe('clean');
  });

  it('catches tampered package files with an SBOM manifest that lists packages only', async () => {
    const obs = await observe(await openRoot(drifted), defaultPolicy());
    const purl = (p: (typeof obs.packages)[number]): string => {
      const type = { dpkg: 'deb/debian', rpm: 'rpm', apk: 'apk', pip: 'pypi', gem: 'gem', cpan: 'cpan', npm: 'npm' }[p.ecosystem];
      const name = p.name.split('/').map(encodeURIComponent).join('/');
      return `pkg:${type}/${name}@${encodeURIComponent(p.version)}${p.arch ? `?arch=${p.arch}` : ''}`;
    };
    const sbom = { bomFormat: 'CycloneDX', specVersion: '1.5', components: obs.packages.map((p) => ({ type: 'library', name: p.name, version: p.version, purl: purl(p) })) };
    const parsed = parseSbom(JSON.parse(JSON.stringify(sbom)), 'image.cdx.json');
    expect(parsed.packages).toHaveLength(obs.packages.length);
    const sbomManifest = manifestFromSbom(parsed.packages, { name: 'langs', version: '2' }, new Date());
    expect((await scan(drifted, sbomManifest)).findings).toEqual([]);

    // Changed with no package operation: dpkg's md5 and pip's RECORD sha256 both notice.
    appendFileSync(path.join(drifted, 'usr/bin/qs-demo'), '# tampered\n');
    appendFileSync(path.join(drifted, `usr/local/lib/python3.11/dist-packages/${PIP_DEMO.module}/__init__.py`), 'import os\n');
    const tampered = await scan(drifted, sbomManifest);
    expect(tampered.findings.map((f) => [f.kind, f.severity, f.path, f.owner?.name])).toEqual(
      expect.arrayContaining([
        ['file-modified', 'critical', '/usr/bin/qs-demo', 'qs-demo'],
        ['file-modified', 'critical', `/usr/local/lib/python3.11/dist-packages/${PIP_DEMO.module}/__init__.py`, PIP_DEMO.normalized],
      ]),
    );
    expect(tampered.findings).toHaveLength(2);
  });
});

describe('a virtualenv under /opt', { timeout: 180_000 }, () => {
  it('is found and its dist-info files are the pip package\'s, verified by RECORD', async () => {
    const dir = copy(ensureWithLanguages());
    pipInstallDemo(dir, { venv: '/opt/app/venv' });
    const obs = await observe(await openRoot(dir), defaultPolicy());
    expect(obs.packages.filter((p) => p.ecosystem === 'pip')).toEqual([{ ecosystem: 'pip', name: PIP_DEMO.normalized, version: PIP_DEMO.version }]);
    const module = `/opt/app/venv/lib/python3.11/site-packages/${PIP_DEMO.module}/__init__.py`;
    expect(obs.owned.get(module)).toEqual({ owner: { ecosystem: 'pip', name: PIP_DEMO.normalized }, conffile: false, digest: { algo: 'sha256', hex: expect.stringMatching(/^[0-9a-f]{64}$/) } });
    expect(obs.files.find((f) => f.path === module)?.sha256).toBe(obs.owned.get(module)?.digest?.hex);
  });
});

describe('a KIWI package-only manifest', { timeout: 180_000 }, () => {
  it('makes a changed package binary critical, and what .verified lists only info', async () => {
    const base = ensureWithLanguages();
    const dir = copy(base);
    const packages = parseKiwiPackages(kiwiPackagesOf(base), 'langs.x86_64-1.0.packages');
    const verified = parseKiwiVerified('..5......    /usr/bin/cat\n', 'langs.x86_64-1.0.verified');
    const manifest = manifestFromKiwi(packages, verified, { name: 'langs', version: '1.0' }, new Date());
    expect((await scan(dir, manifest)).findings).toEqual([]);
    writeFileSync(path.join(dir, 'usr/bin/ls'), 'not ls any more');
    appendFileSync(path.join(dir, 'usr/bin/cat'), 'x');
    const report = await scan(dir, manifest);
    expect(report.findings.map((f) => [f.kind, f.severity, f.path, f.owner?.name])).toEqual([
      ['file-modified', 'critical', '/usr/bin/ls', 'coreutils'],
      ['file-modified', 'info', '/usr/bin/cat', 'coreutils'],
    ]);
    expect(report.summary.counts.critical).toBe(1);
  });
});
