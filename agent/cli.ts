import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { QuicksandError, isQuicksandError } from '../shared/errors.js';
import { defaultPolicy } from '../shared/policy.js';
import { defaultImageName, intoManifestRecord, manifestHeader } from './build-manifest.js';
import { TreeWalker } from './fingerprint.js';
import type { FingerprintOptions } from './fingerprint.js';
import { formatReport } from './format-report.js';
import { openManifestSource, writeManifestStream } from './manifest-stream.js';
import { collectPackages } from './observe.js';
import { PREFETCH_PATHS, prefetch } from './prefetch.js';
import { lowerPriority } from './priority.js';
import { openRoot } from './root.js';
import type { Root } from './root.js';
import { scanSource } from './scan.js';
import { openStatCache } from './stat-cache.js';
import type { StatCache } from './stat-cache.js';

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
  quicksand-agent manifest --root DIR --out FILE [--name N --image-version V] [--state DIR]
  quicksand-agent scan --root DIR --manifest FILE [--json] [--state DIR]
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
  manifest: `Usage: quicksand-agent manifest --root DIR --out FILE [--name N] [--image-version V] [--state DIR]

Records what the image at DIR holds: its packages (dpkg) and every path under the
tracked folders (/usr /etc /opt /boot /bin /sbin /lib /lib32 /lib64 /srv) with type,
mode, owner, size, link target and sha256. Run it as the last step of an image
build, or on a freshly built host.

Options:
  --root DIR            root folder of the image: / or a mounted image or chroot
  --out FILE            where to write the manifest; a name ending in .gz is gzipped
  --name N              image name (default: from the root's os-release, e.g. debian-12)
  --image-version V     image version (default: today's date, e.g. 2026-11-29)
  --state DIR           the agent's state folder, where the stat cache lives
                        (default: ${DEFAULT_STATE_DIR}); files whose size, times and
                        inode did not change since they were last hashed are not read again
  --max-rate N          walk at most N paths per second (default: no limit)
  --max-bytes-rate N    hash at most N bytes per second; K, M, G suffixes (default: no limit)
  --nice N              run at CPU nice level N (0-19) with a matching I/O priority;
                        19 reads only when the disk is otherwise idle
  --cross-mounts        also walk other filesystems mounted below the tracked folders
                        (kernel pseudo filesystems such as /proc are never walked)
  -q, --quiet           no progress or summary on stderr

Example:
  quicksand-agent manifest --root /mnt/image --name web --image-version 42 --out web-42.json.gz
`,
  scan: `Usage: quicksand-agent scan --root DIR --manifest FILE [--json] [--state DIR]

Compares what the root really holds with the manifest of its image and reports
every difference: packages added, removed or changed, and files added, removed,
modified or with changed mode/owner/type. Files of a package that changed are
listed under that package. Paths the manifest's policy ignores (logs, caches,
tmp) never produce findings.

Options:
  --root DIR            root folder to scan (default: /)
  --manifest FILE       the image's manifest (JSON, optionally gzipped)
  --json                print the quicksand.report/v1 document instead of the summary
  --state DIR           the agent's state folder, where the stat cache lives
                        (default: ${DEFAULT_STATE_DIR}); files whose size, times and
                        inode did not change since they were last hashed are not read again
  --max-rate N          walk at most N paths per second (default: no limit)
  --max-bytes-rate N    hash at most N bytes per second; K, M, G suffixes (default: no limit)
  --nice N              run at CPU nice level N (0-19) with a matching I/O priority;
                        19 reads only when the disk is otherwise idle
  --cross-mounts        also walk other filesystems mounted below the tracked folders
                        (kernel pseudo filesystems such as /proc are never walked)
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
  --json                print the report as JSON
  --state DIR           the agent's state folder: baseline and stat cache
                        (default: ${DEFAULT_STATE_DIR}); files whose size, times and
                        inode did not change since they were last hashed are not read again
  --max-rate N          walk at most N paths per second (default: no limit)
  --max-bytes-rate N    hash at most N bytes per second; K, M, G suffixes (default: no limit)
  --nice N              run at CPU nice level N (0-19) with a matching I/O priority;
                        19 reads only when the disk is otherwise idle
  --cross-mounts        also walk other filesystems mounted below the tracked folders
                        (kernel pseudo filesystems such as /proc are never walked)
  -q, --quiet           no progress on stderr

Exit codes: 0 no drift (or baseline just taken), 1 drift, 2 error.
`,
};

const COMMON = { help: { type: 'boolean', short: 'h' }, quiet: { type: 'boolean', short: 'q' } } as const;
// How much a walk may cost, and where its stat cache lives: the same on every walking command.
const COST = {
  state: { type: 'string' },
  'max-rate': { type: 'string' },
  'max-bytes-rate': { type: 'string' },
  nice: { type: 'string' },
  'cross-mounts': { type: 'boolean' },
} as const;
const OPTIONS = {
  manifest: { ...COMMON, ...COST, root: { type: 'string' }, out: { type: 'string' }, name: { type: 'string' }, 'image-version': { type: 'string' } },
  scan: { ...COMMON, ...COST, root: { type: 'string' }, manifest: { type: 'string' }, json: { type: 'boolean' } },
  audit: { ...COMMON, ...COST, root: { type: 'string' }, json: { type: 'boolean' } },
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

interface CostArgs { state?: string; 'max-rate'?: string; 'max-bytes-rate'?: string; nice?: string; 'cross-mounts'?: boolean }
interface ManifestArgs extends CostArgs { root?: string; out?: string; name?: string; 'image-version'?: string; quiet?: boolean }
interface ScanArgs extends CostArgs { root?: string; manifest?: string; json?: boolean; quiet?: boolean }
interface AuditArgs extends CostArgs { root?: string; json?: boolean; quiet?: boolean }

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
  const root = await openRoot(required(args.root, '--root'));
  await assertWritableDir(path.dirname(path.resolve(out)), '--out');
  const t0 = performance.now();
  const policy = defaultPolicy();
  const walk = walkOptions(args, root, io);
  // The walk starts (and its hashing threads boot) while the package databases are read.
  const walker = new TreeWalker(root, policy, { ...walk.options, onProgress: progress(io, args.quiet, 'manifest') });
  const collecting = collectPackages(root);
  walker.shareWith(collecting);
  const walked = prefetch(walker.batches(), collecting, PREFETCH_PATHS);
  let pkgs;
  try {
    pkgs = await collecting;
  } catch (err) {
    await walked.close();
    walk.close(0);
    throw err;
  }
  const image = {
    name: args.name ?? (await defaultImageName(root)),
    version: args['image-version'] ?? new Date().toISOString().slice(0, 10),
  };
  // Streamed straight from the walk to the file: a tree of any size costs the same memory.
  const records = async function* () {
    for await (const batch of walked) yield batch.map((f) => intoManifestRecord(f, pkgs.owned));
  };
  let count: number;
  try {
    count = await writeManifestStream(out, manifestHeader(pkgs.packages, policy, image, new Date()), records());
  } finally {
    await walked.close();
    walk.close(walker.stats.files);
  }
  if (!args.quiet) {
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    io.stderr(`${io.interactive ? '\r' : ''}wrote ${out}: image ${image.name} ${image.version}, ${pkgs.packages.length} packages, ${count} paths, in ${secs} s\n`);
    for (const w of [...pkgs.warnings, ...walker.warnings].slice(0, 10)) io.stderr(`  warning: ${w.code} ${w.path ?? ''}: ${w.message}\n`);
  }
  return EXIT_CLEAN;
}

async function scanCommand(args: ScanArgs, io: CliIo): Promise<number> {
  const manifestFile = required(args.manifest, '--manifest');
  const root = await openRoot(args.root ?? '/');
  const walk = walkOptions(args, root, io);
  let report;
  let files = 0;
  try {
    const source = await openManifestSource(manifestFile);
    report = await scanSource(root, source, { ...walk.options, onProgress: progress(io, args.quiet, 'scan'), onStats: (s) => (files = s.files) });
  } finally {
    walk.close(files);
  }
  if (io.interactive && !args.quiet) io.stderr('\r\x1b[K');
  io.stdout(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report, manifestFile));
  return report.summary.status === 'clean' ? EXIT_CLEAN : EXIT_DRIFT;
}

/** Parses a count with an optional K/M/G suffix (powers of 1024). */
export function parseAmount(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)([kmg])?i?b?$/i.exec(text.trim());
  if (!m) throw new QuicksandError('USAGE', `${flag} expects a number like 5000 or 50M, not "${text}"`);
  const scale = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase() as 'k' | 'm' | 'g'] ?? 1;
  const value = Math.floor(Number(m[1]) * scale);
  if (value <= 0) throw new QuicksandError('USAGE', `${flag} must be above 0`);
  return value;
}

/**
 * The walk options every walking command shares: stat cache, budget, priority. A state folder
 * given with --state must work; the default one may not exist for a non-root user building an
 * image, and then the walk simply runs without a cache.
 */
function walkOptions(args: CostArgs & { quiet?: boolean }, root: Root, io: CliIo): { options: FingerprintOptions; close: (filesSeen: number) => void } {
  const filesPerSec = parseAmount(args['max-rate'], '--max-rate');
  const bytesPerSec = parseAmount(args['max-bytes-rate'], '--max-bytes-rate');
  let nice: number | undefined;
  if (args.nice !== undefined) {
    nice = Number(args.nice);
    if (!Number.isInteger(nice) || nice < 0 || nice > 19) throw new QuicksandError('USAGE', `--nice expects a level from 0 to 19, not "${args.nice}"`);
    for (const problem of lowerPriority(nice)) io.stderr(`quicksand-agent: warning: ${problem}\n`);
  }
  let cache: StatCache | undefined;
  try {
    cache = openStatCache(path.resolve(args.state ?? DEFAULT_STATE_DIR), root.dir === '' ? '/' : root.dir);
  } catch (err) {
    if (args.state !== undefined) throw err;
    if (!args.quiet) io.stderr(`quicksand-agent: warning: ${(err as Error).message}; every file is hashed\n`);
  }
  const options: FingerprintOptions = {
    ...(cache ? { cache } : {}),
    ...(filesPerSec || bytesPerSec ? { budget: { ...(filesPerSec ? { filesPerSec } : {}), ...(bytesPerSec ? { bytesPerSec } : {}) } } : {}),
    ...(nice ? { nice } : {}),
    ...(args['cross-mounts'] ? { crossMounts: true } : {}),
  };
  return {
    options,
    close: (filesSeen) => {
      if (!cache) return;
      if (filesSeen > 0) cache.prune(filesSeen);
      cache.close();
    },
  };
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
    await manifestCommand({ ...args, state, root, out: baseline }, io);
    io.stderr(`Baseline taken. Run \`quicksand-agent audit${args.state ? ` --state ${args.state}` : ''}\` again to see what changed since.\n`);
    return EXIT_CLEAN;
  }
  return scanCommand({ ...args, state, root, manifest: baseline }, io);
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
