// Measures what issue 3 asks for, on the cached debootstrap trees the tests build:
//  1. one `apt-get install netcat-openbsd less` (minbase → minbase+apt): findings vs changed paths;
//  2. scan time with every collector on, against dpkg alone, on that tree and on the languages
//     tree after pip, gem, cpan and npm installs.
// Run: npx tsx bench/every-ecosystem.ts   (as root; builds the trees on first use)
import { manifestFromObservation } from '../agent/manifest/build.js';
import { dpkgCollector } from '../agent/collect/dpkg.js';
import { COLLECTORS } from '../agent/collect/index.js';
import { observe } from '../agent/fingerprint/observe.js';
import { openRoot } from '../agent/root.js';
import { scanRoot } from '../agent/diff/scan.js';
import { defaultPolicy } from '../shared/policy.js';
import type { Manifest } from '../shared/manifest.js';
import type { Report } from '../shared/report.js';
import { copyTree, ensureMinbase, ensureWithLanguages, ensureWithPackages } from '../test/helpers/debian-root.js';
import { cpanInstallDemo, gemInstallDemo, npmInstallDemo, pipInstallDemo } from '../test/helpers/language-installs.js';

async function manifestOf(dir: string): Promise<Manifest> {
  const policy = defaultPolicy();
  return manifestFromObservation(await observe(await openRoot(dir), policy), policy, { name: 'bench', version: '1' }, new Date());
}

async function timedScans(dir: string, manifest: Manifest, collectors: typeof COLLECTORS, runs = 3): Promise<{ ms: number[]; report: Report }> {
  const ms: number[] = [];
  let report: Report | undefined;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    report = await scanRoot(await openRoot(dir), manifest, { hostname: 'bench', collectors });
    ms.push(Math.round(performance.now() - t));
  }
  return { ms: ms.sort((a, b) => a - b), report: report! };
}

const median = (xs: number[]): number => xs[Math.floor(xs.length / 2)]!;

const minbase = ensureMinbase();
const withApt = ensureWithPackages();
const aptManifest = await manifestOf(minbase);
const all = await timedScans(withApt, aptManifest, COLLECTORS);
const dpkgOnly = await timedScans(withApt, aptManifest, [dpkgCollector]);
const r = all.report;
const changedPaths = r.summary.files;
console.log('apt-get install netcat-openbsd less on debootstrap minbase:');
console.log(`  changed paths: ${changedPaths}; top-level findings: ${r.summary.findings}; change sets: ${r.summary.changeSets}`);
for (const f of r.findings) console.log(`    ${f.kind} ${f.ecosystem ?? ''} ${f.name ?? f.path} ${f.after ?? ''} (${f.changes?.length ?? 0} paths) change set ${f.changeSet ?? '-'}`);
console.log(`  scan (${r.stats.files} paths, ${r.stats.packages} packages): all collectors median ${median(all.ms)} ms [${all.ms.join(', ')}]; dpkg only median ${median(dpkgOnly.ms)} ms [${dpkgOnly.ms.join(', ')}]`);

const langs = ensureWithLanguages();
const langsManifest = await manifestOf(langs);
const drifted = copyTree(langs);
try {
  pipInstallDemo(drifted.dir);
  gemInstallDemo(drifted.dir);
  cpanInstallDemo(drifted.dir);
  npmInstallDemo(drifted.dir);
  const l = await timedScans(drifted.dir, langsManifest, COLLECTORS);
  const ld = await timedScans(drifted.dir, langsManifest, [dpkgCollector]);
  console.log('languages tree (python3-pip ruby perl make ...) after pip, gem, cpan and npm installs:');
  console.log(`  changed paths: ${l.report.summary.files}; top-level findings: ${l.report.summary.findings}; change sets: ${l.report.summary.changeSets}`);
  const perCollector: string[] = [];
  for (const c of COLLECTORS) {
    const t = performance.now();
    const got = await c.collect(await openRoot(drifted.dir));
    perCollector.push(`${c.ecosystem} ${Math.round(performance.now() - t)} ms${got ? ` (${got.packages.length} packages)` : ' (absent)'}`);
  }
  console.log(`  collectors alone: ${perCollector.join(', ')}`);
  console.log(`  scan (${l.report.stats.files} paths, ${l.report.stats.packages} packages): all collectors median ${median(l.ms)} ms [${l.ms.join(', ')}]; dpkg only median ${median(ld.ms)} ms [${ld.ms.join(', ')}] (dpkg only: ${ld.report.summary.findings} findings)`);
} finally {
  drifted.remove();
}
