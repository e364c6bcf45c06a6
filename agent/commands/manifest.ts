// `quicksand-agent manifest`: record what an image holds, from its root or from the package list
// an image builder wrote (KIWI, CycloneDX / SPDX SBOM).
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { QuicksandError, isQuicksandError } from '../../shared/errors.js';
import type { OptionValues } from '../../shared/command-line.js';
import { normalizeImageRef } from '../../shared/image-ref.js';
import { defaultPolicy } from '../../shared/policy.js';
import { walkWhileCollecting } from '../fingerprint/observe.js';
import type { ObservedFile } from '../fingerprint/walk.js';
import { isKnownClean } from '../diff/differ.js';
import { createConfigTextReader } from '../fingerprint/config-text.js';
import { defaultImageName, intoManifestRecord, manifestHeader } from '../manifest/build.js';
import { writeManifestFile } from '../manifest/io.js';
import { fileDigest, writeManifestStream } from '../manifest/stream.js';
import { openRoot } from '../root.js';
import { COMMON, COST, COST_HELP, DEFAULT_STATE_DIR, EXIT_CLEAN, assertWritableDir, noArguments, openCleanPathsFor, required, walkOptions } from './common.js';
import { expectedPaths, startProgress } from './progress.js';
import type { CliIo, CostArgs } from './common.js';

export const help = `Usage: quicksand-agent manifest --root DIR --out FILE [--name N] [--image-version V] [--state DIR]
       quicksand-agent manifest --from-kiwi FILE.packages [--verified FILE.verified] --out FILE
       quicksand-agent manifest --from-sbom FILE.json --out FILE
       quicksand-agent manifest --image-layers DIR[:DIR...] --name REF --image-version ID --out FILE

Records what the image at DIR holds: its packages (dpkg, rpm, apk, pip, gem, cpan,
npm global) and every path under the tracked folders (/usr /etc /opt /boot /bin
/sbin /lib /lib32 /lib64 /srv) with type, mode, owner, size, link target and
sha256. Run it as the last step of an image build, or on a freshly built host.

Or imports the package list an image builder already wrote: KIWI's .packages (and
its .verified: what already differed from its package before first boot is not
drift), or a CycloneDX / SPDX JSON SBOM (ecosystems taken from the purls). Such a
manifest lists packages only: a scan then checks every package-owned file against
its package database's own digest instead of a file record.

Or records a container image from its layer folders on a container host (read
through the agent's own overlay resolution, never mounted): uploaded to the
server (POST /api/v1/images) as image REF version ID, it is what every container
of that image is held to, instead of the image's layers as the agent first finds
them (layers changed on the host then show as drift from the first scan on).

Options:
  --root DIR            root folder of the image: / or a mounted image or chroot
  --from-kiwi FILE      import KIWI's <name>.<arch>-<version>.packages instead of reading a root
  --verified FILE       with --from-kiwi: KIWI's .verified (rpm -Va output of the image)
  --from-sbom FILE      import a CycloneDX or SPDX JSON SBOM instead of reading a root
  --image-layers DIRS   a container image's layer folders, top first, separated by ":"
                        (as overlay's lowerdir= names them), instead of a root; --name is
                        its reference (debian:12), --image-version its image id (sha256:…)
  --out FILE            where to write the manifest; a name ending in .gz is gzipped
  --name N              image name (default: from the root's os-release, e.g. debian-12)
  --image-version V     image version (default: today's date, e.g. 2026-11-29)
  --state DIR           the agent's state folder, where the stat cache lives
                        (default: ${DEFAULT_STATE_DIR}); files whose size, times and
                        inode did not change since they were last hashed are not read again
${COST_HELP}  -q, --quiet           no progress or summary on stderr

Example:
  quicksand-agent manifest --root /mnt/image --name web --image-version 42 --out web-42.json.gz
`;

export const options = {
  ...COMMON,
  ...COST,
  root: { type: 'string' },
  out: { type: 'string' },
  name: { type: 'string' },
  'image-version': { type: 'string' },
  'from-kiwi': { type: 'string' },
  verified: { type: 'string' },
  'from-sbom': { type: 'string' },
  'image-layers': { type: 'string' },
} as const;

export interface ManifestArgs extends CostArgs {
  root?: string;
  out?: string;
  name?: string;
  'image-version'?: string;
  'from-kiwi'?: string;
  verified?: string;
  'from-sbom'?: string;
  'image-layers'?: string;
  quiet?: boolean;
}

export async function run(values: OptionValues, positionals: string[], io: CliIo): Promise<number> {
  noArguments(positionals);
  return manifestCommand(values as ManifestArgs, io);
}

export async function manifestCommand(args: ManifestArgs, io: CliIo): Promise<number> {
  const out = required(args.out, '--out');
  if (args['from-kiwi'] !== undefined || args['from-sbom'] !== undefined) return importManifestCommand(args, out, io);
  if (args.verified !== undefined) throw new QuicksandError('USAGE', '--verified goes with --from-kiwi');
  if (args['image-layers'] !== undefined) return imageLayersCommand(args, args['image-layers'], out, io);
  const root = await openRoot(required(args.root, '--root'));
  await assertWritableDir(path.dirname(path.resolve(out)), '--out');
  const t0 = performance.now();
  const policy = defaultPolicy();
  const walk = walkOptions(args, root, io);
  const shown = startProgress(io, args.quiet, 'manifest', args.quiet ? undefined : await expectedPaths(root.dir, walk.lastWalk(), policy.tracked));
  // Each record written is what the walk saw: the next scan against this file may take every
  // path whose lstat did not move as clean, so the manifest remembers them as a scan would.
  const clean = openCleanPathsFor(args, root, '', walk.options);
  let started;
  try {
    started = await walkWhileCollecting(root, policy, { ...walk.options, ...(clean ? { clean } : {}), ...(shown.onProgress ? { onProgress: shown.onProgress } : {}) });
  } catch (err) {
    shown.stop();
    walk.close(0);
    clean?.close();
    throw err;
  }
  const { walker, walked, packages: pkgs } = started;
  const image = {
    name: args.name ?? (await defaultImageName(root)),
    version: args['image-version'] ?? new Date().toISOString().slice(0, 10),
  };
  // Streamed straight from the walk to the file: a tree of any size costs the same memory.
  const owned = pkgs.owned;
  // Small config files carry their text, secrets masked, so a later change shows as a diff.
  const texts = createConfigTextReader(root, policy);
  const records = async function* () {
    for await (const entries of walked) {
      // Only paths found clean against an earlier scan's manifest come as strings: none here.
      const batch = entries as ObservedFile[];
      const recs = batch.map((f) => {
        const readable = f.unreadable === undefined;
        const rec = intoManifestRecord(f, owned);
        walker.settle(f, readable && isKnownClean(rec, f));
        return rec;
      });
      await texts.fillRecords(recs);
      yield recs;
    }
  };
  let count: number;
  try {
    count = await writeManifestStream(out, manifestHeader(pkgs.packages, policy, image, new Date()), records());
    const written = fileDigest(out);
    if (written !== undefined) clean?.adopt(written);
  } finally {
    shown.stop();
    await walked.close();
    walk.close(walker.stats.files);
    clean?.close();
  }
  if (!args.quiet) {
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    io.stderr(`wrote ${out}: image ${image.name} ${image.version}, ${pkgs.packages.length} packages, ${count} paths, in ${secs} s\n`);
    for (const w of [...pkgs.warnings, ...walker.warnings].slice(0, 10)) io.stderr(`  warning: ${w.code} ${w.path ?? ''}: ${w.message}\n`);
  }
  return EXIT_CLEAN;
}

/** `--image-layers`: a container image's manifest from its layer folders. */
async function imageLayersCommand(args: ManifestArgs, layers: string, out: string, io: CliIo): Promise<number> {
  if (args.root !== undefined) throw new QuicksandError('USAGE', 'use one of --root and --image-layers');
  // Stored under the reference normalized (debian:12 = docker.io/library/debian:12), as agents ask for it.
  const name = normalizeImageRef(required(args.name, '--name (the image reference, e.g. debian:12)'));
  const version = required(args['image-version'], '--image-version (the image id, e.g. sha256:…)');
  const dirs = layers.split(':').filter((d) => d !== '').map((d) => path.resolve(d));
  if (dirs.length === 0 || dirs.length > 500) throw new QuicksandError('USAGE', `--image-layers: expected 1 to 500 layer folders separated by ":", got ${dirs.length}`);
  for (const d of dirs) {
    const st = await stat(d).catch(() => null);
    if (st === null || !st.isDirectory()) throw new QuicksandError('ROOT_NOT_FOUND', `--image-layers: ${d} is not a folder`);
  }
  await assertWritableDir(path.dirname(path.resolve(out)), '--out');
  const { manifestFromLayers } = await import('../containers/image-manifest.js');
  const { manifest, warnings } = await manifestFromLayers(dirs, { name, version }, defaultPolicy());
  await writeManifestFile(out, manifest);
  if (!args.quiet) {
    io.stderr(`wrote ${out}: image ${name} ${version}, ${manifest.packages.length} packages, ${manifest.files.length} paths, from ${dirs.length} layers\n`);
    for (const w of warnings.slice(0, 10)) io.stderr(`  warning: ${w}\n`);
  }
  return EXIT_CLEAN;
}

async function importManifestCommand(args: ManifestArgs, out: string, io: CliIo): Promise<number> {
  const sources = [args.root, args['from-kiwi'], args['from-sbom']].filter((v) => v !== undefined);
  if (sources.length > 1) throw new QuicksandError('USAGE', 'use one of --root, --from-kiwi and --from-sbom');
  if (args.verified !== undefined && args['from-kiwi'] === undefined) throw new QuicksandError('USAGE', '--verified goes with --from-kiwi');
  await assertWritableDir(path.dirname(path.resolve(out)), '--out');
  let manifest;
  if (args['from-kiwi'] !== undefined) {
    const file = args['from-kiwi'];
    const { kiwiImageIdentity, manifestFromKiwi, parseKiwiPackages, parseKiwiVerified } = await import('../manifest/import-kiwi.js');
    const packages = parseKiwiPackages(await readInput(file, '--from-kiwi'), file);
    const verified = args.verified === undefined ? [] : parseKiwiVerified(await readInput(args.verified, '--verified'), args.verified);
    const named = kiwiImageIdentity(path.basename(file));
    const image = { name: args.name ?? named?.name ?? path.basename(file).replace(/\.packages$/, ''), version: args['image-version'] ?? named?.version ?? 'unknown' };
    manifest = manifestFromKiwi(packages, verified, image, new Date());
  } else {
    const file = args['from-sbom']!;
    let value: unknown;
    try {
      value = JSON.parse(await readInput(file, '--from-sbom'));
    } catch (err) {
      if (isQuicksandError(err)) throw err;
      throw new QuicksandError('MANIFEST_INVALID', `${file}: not JSON (${(err as Error).message})`);
    }
    const { manifestFromSbom, parseSbom } = await import('../manifest/import-sbom.js');
    const sbom = parseSbom(value, file);
    if (sbom.packages.length === 0) throw new QuicksandError('MANIFEST_INVALID', `${file}: no package with a purl of a known ecosystem (deb, rpm, apk, pypi, gem, cpan, npm)`);
    const image = { name: args.name ?? sbom.image.name ?? path.basename(file).replace(/\.json$/, ''), version: args['image-version'] ?? sbom.image.version ?? 'unknown' };
    manifest = manifestFromSbom(sbom.packages, image, new Date());
    if (!args.quiet && sbom.skipped > 0) io.stderr(`note: ${sbom.skipped} ${sbom.format} entries without a purl of a known ecosystem were left out\n`);
  }
  await writeManifestFile(out, manifest);
  if (!args.quiet) io.stderr(`wrote ${out}: image ${manifest.image.name} ${manifest.image.version}, ${manifest.packages.length} packages (package-only: scans verify files against the package databases)\n`);
  return EXIT_CLEAN;
}

async function readInput(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new QuicksandError('MANIFEST_NOT_FOUND', `${flag} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}
