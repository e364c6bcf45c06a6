import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { QuicksandError, isQuicksandError } from '../shared/errors.js';
import { defaultPolicy } from '../shared/policy.js';
import { defaultImageName, manifestFromObservation } from './build-manifest.js';
import { formatReport } from './format-report.js';
import { kiwiImageIdentity, manifestFromKiwi, parseKiwiPackages, parseKiwiVerified } from './import-kiwi.js';
import { manifestFromSbom, parseSbom } from './import-sbom.js';
import { readManifestFile, writeManifestFile } from './manifest-io.js';
import { observe } from './observe.js';
import { openRoot } from './root.js';
import { scanRoot } from './scan.js';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** True when stderr is a terminal: progress lines are drawn only then. */
  interactive: boolean;
}

export const EXIT_CLEAN = 0;
export const EXIT_DRIFT = 1;
export const EXIT_ERROR = 2;

export const DEFAULT_STATE_DIR = '/var/lib/quicksand';

const USAGE = `quicksand-agent — does this host still match its image?

Usage:
  quicksand-agent manifest --root DIR --out FILE [--name N --image-version V]
  quicksand-agent manifest --from-kiwi FILE.packages [--verified FILE.verified] --out FILE
  quicksand-agent manifest --from-sbom FILE.json --out FILE
  quicksand-agent scan --root DIR --manifest FILE [--json]
  quicksand-agent audit [--root DIR] [--state DIR] [--json]
  quicksand-agent help COMMAND

Commands:
  manifest  record what an image holds (packages, files, digests) as a manifest
  scan      compare a host or image root with a manifest and report the drift
  audit     audit this machine: the first run takes a baseline manifest into the
            state folder, every later run scans against it

Exit codes: 0 no drift, 1 drift found, 2 error.
Run \`quicksand-agent COMMAND --help\` for the options of one command.
`;

const HELP: Record<string, string> = {
  manifest: `Usage: quicksand-agent manifest --root DIR --out FILE [--name N] [--image-version V]
       quicksand-agent manifest --from-kiwi FILE.packages [--verified FILE.verified] --out FILE
       quicksand-agent manifest --from-sbom FILE.json --out FILE

Records what the image at DIR holds: its packages (dpkg, rpm, apk, pip, gem, cpan,
npm global) and every path under the tracked folders (/usr /etc /opt /boot /bin
/sbin /lib /lib32 /lib64 /srv) with type, mode, owner, size, link target and
sha256. Run it as the last step of an image build, or on a freshly built host.

Or imports the package list an image builder already wrote: KIWI's .packages (and
its .verified: what already differed from its package before first boot is not
drift), or a CycloneDX / SPDX JSON SBOM (ecosystems taken from the purls). Such a
manifest lists packages only: a scan then checks every package-owned file against
its package database's own digest instead of a file record.

Options:
  --root DIR            root folder of the image: / or a mounted image or chroot
  --from-kiwi FILE      import KIWI's <name>.<arch>-<version>.packages instead of reading a root
  --verified FILE       with --from-kiwi: KIWI's .verified (rpm -Va output of the image)
  --from-sbom FILE      import a CycloneDX or SPDX JSON SBOM instead of reading a root
  --out FILE            where to write the manifest; a name ending in .gz is gzipped
  --name N              image name (default: from the root's os-release, e.g. debian-12)
  --image-version V     image version (default: today's date, e.g. 2026-11-29)
  -q, --quiet           no progress or summary on stderr

Example:
  quicksand-agent manifest --root /mnt/image --name web --image-version 42 --out web-42.json.gz
`,
  scan: `Usage: quicksand-agent scan --root DIR --manifest FILE [--json]

Compares what the root really holds with the manifest of its image and reports
every difference: packages added, removed or changed, and files added, removed,
modified or with changed mode/owner/type. Files of a package that changed are
listed under that package, and each package change names the operation that made
it (the apt command, rpm transaction, pip/gem/cpan/npm install) from the package
managers' own records; the summary counts those operations, not files. Paths the manifest's policy ignores (logs, caches,
tmp) never produce findings.

Options:
  --root DIR            root folder to scan (default: /)
  --manifest FILE       the image's manifest (JSON, optionally gzipped)
  --json                print the quicksand.report/v1 document instead of the summary
  -q, --quiet           no progress on stderr

Exit codes: 0 no drift (info findings only at most), 1 drift, 2 error.

Example:
  quicksand-agent scan --root / --manifest /etc/quicksand/image.json.gz || echo "this host is a pet"
`,
  audit: `Usage: quicksand-agent audit [--root DIR] [--state DIR] [--json]

Audits this machine in one command. The first run records a baseline manifest of
the root into the state folder (baseline.manifest.json.gz); every later run scans
the root against that baseline. Delete the baseline to take a new one.

Options:
  --root DIR            root folder to audit (default: /)
  --state DIR           the agent's state folder (default: ${DEFAULT_STATE_DIR})
  --json                print the report as JSON
  -q, --quiet           no progress on stderr

Exit codes: 0 no drift (or baseline just taken), 1 drift, 2 error.
`,
};

const COMMON = { help: { type: 'boolean', short: 'h' }, quiet: { type: 'boolean', short: 'q' } } as const;
const OPTIONS = {
  manifest: {
    ...COMMON,
    root: { type: 'string' },
    out: { type: 'string' },
    name: { type: 'string' },
    'image-version': { type: 'string' },
    'from-kiwi': { type: 'string' },
    verified: { type: 'string' },
    'from-sbom': { type: 'string' },
  },
  scan: { ...COMMON, root: { type: 'string' }, manifest: { type: 'string' }, json: { type: 'boolean' } },
  audit: { ...COMMON, root: { type: 'string' }, state: { type: 'string' }, json: { type: 'boolean' } },
} satisfies Record<string, ParseArgsConfig['options']>;

type Command = keyof typeof OPTIONS;

/** Runs one agent command line and returns its exit code. Never throws for a user's mistake. */
export async function runAgentCli(argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    const topic = rest[0];
    io.stdout(topic !== undefined && topic in HELP ? HELP[topic]! : USAGE);
    return command === undefined ? EXIT_ERROR : EXIT_CLEAN;
  }
  if (!(command in OPTIONS)) {
    io.stderr(`quicksand-agent: unknown command "${command}". Commands: ${Object.keys(OPTIONS).join(', ')}. See quicksand-agent --help.\n`);
    return EXIT_ERROR;
  }
  const cmd = command as Command;
  try {
    const { values, positionals } = parseArgs({ args: rest, options: OPTIONS[cmd], strict: true, allowPositionals: true });
    if (values.help) {
      io.stdout(HELP[cmd]!);
      return EXIT_CLEAN;
    }
    if (positionals.length > 0) throw new QuicksandError('USAGE', `unexpected argument "${positionals[0]}"`);
    switch (cmd) {
      case 'manifest':
        return await manifestCommand(values as ManifestArgs, io);
      case 'scan':
        return await scanCommand(values as ScanArgs, io);
      case 'audit':
        return await auditCommand(values as AuditArgs, io);
    }
  } catch (err) {
    return reportError(err, cmd, io);
  }
}

function reportError(err: unknown, cmd: string, io: CliIo): number {
  if (isQuicksandError(err)) {
    const hint = err.code === 'USAGE' ? ` (see quicksand-agent ${cmd} --help)` : '';
    io.stderr(`quicksand-agent ${cmd}: ${err.message}${hint}\n`);
  } else if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    io.stderr(`quicksand-agent ${cmd}: ${(err as Error).message} (see quicksand-agent ${cmd} --help)\n`);
  } else {
    // A bug, not a user mistake: say so, keep the stack for whoever files it.
    io.stderr(`quicksand-agent ${cmd}: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\nPlease report this with the command you ran.\n`);
  }
  return EXIT_ERROR;
}

interface ManifestArgs {
  root?: string;
  out?: string;
  name?: string;
  'image-version'?: string;
  'from-kiwi'?: string;
  verified?: string;
  'from-sbom'?: string;
  quiet?: boolean;
}
interface ScanArgs { root?: string; manifest?: string; json?: boolean; quiet?: boolean }
interface AuditArgs { root?: string; state?: string; json?: boolean; quiet?: boolean }

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new QuicksandError('USAGE', `${flag} is required`);
  return value;
}

function progress(io: CliIo, quiet: boolean | undefined, verb: string): ((files: number, bytes: number) => void) | undefined {
  if (quiet || !io.interactive) return undefined;
  let last = 0;
  return (files, bytes) => {
    const t = Date.now();
    if (t - last < 200) return;
    last = t;
    io.stderr(`\r${verb}: ${files} paths, ${(bytes / 1024 / 1024).toFixed(0)} MiB hashed `);
  };
}

async function manifestCommand(args: ManifestArgs, io: CliIo): Promise<number> {
  const out = required(args.out, '--out');
  if (args['from-kiwi'] !== undefined || args['from-sbom'] !== undefined) return importManifestCommand(args, out, io);
  if (args.verified !== undefined) throw new QuicksandError('USAGE', '--verified goes with --from-kiwi');
  const root = await openRoot(required(args.root, '--root'));
  await assertWritableDir(path.dirname(path.resolve(out)), '--out');
  const t0 = performance.now();
  const policy = defaultPolicy();
  const obs = await observe(root, policy, { onProgress: progress(io, args.quiet, 'manifest') });
  const image = {
    name: args.name ?? (await defaultImageName(root)),
    version: args['image-version'] ?? new Date().toISOString().slice(0, 10),
  };
  const manifest = manifestFromObservation(obs, policy, image, new Date());
  await writeManifestFile(out, manifest);
  if (!args.quiet) {
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    io.stderr(`${io.interactive ? '\r' : ''}wrote ${out}: image ${image.name} ${image.version}, ${manifest.packages.length} packages, ${manifest.files.length} paths, in ${secs} s\n`);
    for (const w of obs.warnings.slice(0, 10)) io.stderr(`  warning: ${w.code} ${w.path ?? ''}: ${w.message}\n`);
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

async function scanCommand(args: ScanArgs, io: CliIo): Promise<number> {
  const manifestFile = required(args.manifest, '--manifest');
  const root = await openRoot(args.root ?? '/');
  const manifest = await readManifestFile(manifestFile);
  const report = await scanRoot(root, manifest, { onProgress: progress(io, args.quiet, 'scan') });
  if (io.interactive && !args.quiet) io.stderr('\r\x1b[K');
  io.stdout(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report, manifestFile));
  return report.summary.status === 'clean' ? EXIT_CLEAN : EXIT_DRIFT;
}

async function auditCommand(args: AuditArgs, io: CliIo): Promise<number> {
  const state = path.resolve(args.state ?? DEFAULT_STATE_DIR);
  const root = args.root ?? '/';
  try {
    await mkdir(state, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new QuicksandError('STATE_DIR_UNUSABLE', `cannot create the state folder ${state}: ${(err as Error).message}; run as root or pass --state DIR`);
  }
  const baseline = path.join(state, 'baseline.manifest.json.gz');
  if (!(await exists(baseline))) {
    io.stderr(`No baseline yet: recording what ${root} holds now as its expected state.\n`);
    await manifestCommand({ root, out: baseline, quiet: args.quiet }, io);
    io.stderr(`Baseline taken. Run \`quicksand-agent audit${args.state ? ` --state ${args.state}` : ''}\` again to see what changed since.\n`);
    return EXIT_CLEAN;
  }
  return scanCommand({ root, manifest: baseline, json: args.json, quiet: args.quiet }, io);
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

async function assertWritableDir(dir: string, flag: string): Promise<void> {
  try {
    if ((await stat(dir)).isDirectory()) return;
  } catch {
    // fall through
  }
  throw new QuicksandError('OUTPUT_UNWRITABLE', `${flag}: folder ${dir} does not exist`);
}
