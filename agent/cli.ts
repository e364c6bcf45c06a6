import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { QuicksandError, isQuicksandError } from '../shared/errors.js';
import { runCommandLine } from '../shared/command-line.js';
import { defaultPolicy } from '../shared/policy.js';
import { defaultImageName, intoManifestRecord, manifestHeader } from './manifest/build.js';
import type { FingerprintOptions } from './fingerprint/walk.js';
import { formatReport } from './diff/format-report.js';
import { readManifestFile, writeManifestFile } from './manifest/io.js';
import { openManifestSource, writeManifestStream } from './manifest/stream.js';
import { walkWhileCollecting } from './fingerprint/observe.js';
import { lowerPriority } from './fingerprint/priority.js';
import { openRoot } from './root.js';
import type { Root } from './root.js';
import type { Manifest } from '../shared/manifest.js';
import type { Report } from '../shared/report.js';
import { scanRoot, scanSource } from './diff/scan.js';
import { openStatCache } from './fingerprint/stat-cache.js';
import type { StatCache } from './fingerprint/stat-cache.js';
// Only what every walking command needs is imported here. The rest (the importers, the daemon
// with ws, chokidar and node-cron, the manifest schema) is loaded by the command that uses it:
// a scan or manifest run then starts without them (about 70 ms of a 0.3 s scan).

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** True when stderr is a terminal: progress lines are drawn only then. */
  interactive: boolean;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM): `run` then shuts down. */
  stopSignal?: Promise<void>;
}

export const EXIT_CLEAN = 0;
export const EXIT_DRIFT = 1;
export const EXIT_ERROR = 2;

export const DEFAULT_STATE_DIR = '/var/lib/quicksand';

/** Full scans: hourly, at a minute derived from the agent id (see schedule.ts). */
const DEFAULT_SCHEDULE = 'hourly at this host\'s own minute';

const USAGE = `quicksand-agent — does this host still match its image?

Usage:
  quicksand-agent manifest --root DIR --out FILE [--name N --image-version V] [--state DIR]
  quicksand-agent manifest --from-kiwi FILE.packages [--verified FILE.verified] --out FILE
  quicksand-agent manifest --from-sbom FILE.json --out FILE
  quicksand-agent scan --root DIR --manifest FILE [--json] [--send] [--state DIR]
  quicksand-agent audit [--root DIR] [--state DIR] [--json]
  quicksand-agent enroll --server URL --secret S [--state DIR]
  quicksand-agent run [--root DIR] [--manifest FILE] [--state DIR] [--label NAME=VALUE]
  quicksand-agent ticket [ID --for DURATION | --clear] [--state DIR]
  quicksand-agent help COMMAND

Commands:
  manifest  record what an image holds (packages, files, digests) as a manifest
  scan      compare a host or image root with a manifest and report the drift
  audit     audit this machine: the first run takes a baseline manifest into the
            state folder, every later run scans against it
  enroll    exchange an enrolment secret for this host's identity on a server
  run       the daemon: scan on start and on a schedule, stream reports to the server
  ticket    declare the change ticket of the changes you are about to make on this host

Exit codes: 0 no drift, 1 drift found, 2 error.
Run \`quicksand-agent COMMAND --help\` for the options of one command.
`;

// The walk's cost options, shared by every walking command (manifest, scan, audit).
const COST_HELP = `  --max-rate N          walk at most N paths per second (default: no limit)
  --max-bytes-rate N    hash at most N bytes per second; K, M, G suffixes (default: no limit)
  --nice N              run at CPU nice level N (0-19) with a matching I/O priority;
                        19 reads only when the disk is otherwise idle
  --cross-mounts        also walk other filesystems mounted below the tracked folders
                        (kernel pseudo filesystems such as /proc are never walked)
`;

const HELP: Record<string, string> = {
  manifest: `Usage: quicksand-agent manifest --root DIR --out FILE [--name N] [--image-version V] [--state DIR]
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
  --state DIR           the agent's state folder, where the stat cache lives
                        (default: ${DEFAULT_STATE_DIR}); files whose size, times and
                        inode did not change since they were last hashed are not read again
${COST_HELP}  -q, --quiet           no progress or summary on stderr

Example:
  quicksand-agent manifest --root /mnt/image --name web --image-version 42 --out web-42.json.gz
`,
  scan: `Usage: quicksand-agent scan --root DIR --manifest FILE [--json] [--send] [--state DIR]

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
  --send                also deliver the report to the server this agent is enrolled
                        with, through the outbox; waits for the server's ack
  --state DIR           the agent's state folder (default: ${DEFAULT_STATE_DIR}): the stat
                        cache (files whose size, times and inode did not change since they
                        were last hashed are not read again) and the outbox of --send
  --config FILE         the agent's identity, for --send (default: agent.json in the
                        state folder, else /etc/quicksand/agent.json)
  --timeout SECONDS     how long --send waits for the ack (default: 120); the report
                        stays in the outbox when it runs out, and goes with the next send
${COST_HELP}  -q, --quiet           no progress on stderr

Exit codes: 0 no drift (info findings only at most), 1 drift, 2 error (also when
--send could not deliver).

Example:
  quicksand-agent scan --root / --manifest /etc/quicksand/image.json.gz || echo "this host is a pet"
`,
  audit: `Usage: quicksand-agent audit [--root DIR] [--state DIR] [--json]

Audits this machine in one command. The first run records a baseline manifest of
the root into the state folder (baseline.manifest.json.gz); every later run scans
the root against that baseline. Delete the baseline to take a new one.

Options:
  --root DIR            root folder to audit (default: /)
  --state DIR           the agent's state folder: baseline and stat cache
                        (default: ${DEFAULT_STATE_DIR}); files whose size, times and
                        inode did not change since they were last hashed are not read again
  --json                print the report as JSON
${COST_HELP}  -q, --quiet           no progress on stderr

Exit codes: 0 no drift (or baseline just taken), 1 drift, 2 error.
`,
  enroll: `Usage: quicksand-agent enroll --server URL --secret S [--state DIR] [--config FILE]

Exchanges an enrolment secret (from \`quicksand-server enroll-secret\`) for this host's
own agent id and token, and writes them to agent.json (mode 0600).

Options:
  --server URL          the server, e.g. http://quicksand.example:7410
  --secret S            the enrolment secret
  --state DIR           the agent's state folder (default: ${DEFAULT_STATE_DIR})
  --config FILE         where to write the identity (default: agent.json in the state folder)
  --force               enrol again even if this host already has an identity

Example:
  quicksand-agent enroll --server http://10.0.0.5:7410 --secret qse.4f2c...
`,
  run: `Usage: quicksand-agent run [--root DIR] [--manifest FILE] [--state DIR] [--label NAME=VALUE]

The daemon. Watches the tracked paths in real time (an event report a moment after
a change), scans the whole root on start, on a schedule and when the server asks,
and streams every report to the server. Each report is written to the outbox in the
state folder first and deleted only when the server acknowledged it, so nothing
is lost while the server or the network is down; the agent reconnects by itself.

Options:
  --root DIR            root folder to scan (default: /)
  --manifest FILE       the image's manifest (default: the baseline in the state
                        folder, taken on the first run as \`audit\` does)
  --state DIR           the agent's state folder (default: ${DEFAULT_STATE_DIR})
  --config FILE         the agent's identity (default: agent.json in the state folder,
                        else /etc/quicksand/agent.json)
  --schedule CRON       when to run full scans (default: ${DEFAULT_SCHEDULE}; 6 fields for seconds)
  --no-watch            no realtime watch: scheduled full scans only
  --heartbeat SECONDS   heartbeat interval (default: 30)
  --reconnect-max SECONDS  longest wait between reconnect attempts (default: 300)
  --label NAME=VALUE    a label this host declares, e.g. --label team=payments; repeat
                        for more. Server rules see it as agent/NAME ("hostLabels":
                        {"agent/team":"payments"}), apart from the labels the API sets

Stops on SIGINT/SIGTERM.
`,
  ticket: `Usage: quicksand-agent ticket ID --for DURATION [--state DIR]
       quicksand-agent ticket --clear [--state DIR]
       quicksand-agent ticket [--state DIR]

Declares the change ticket of the changes you are about to make on this host. For
DURATION, every report the agent sends (the daemon's and scan --send's) carries the
ticket on its findings, and a server rule can auto-approve ticketed changes made
inside a declared maintenance window, recording the ticket. A change the server saw
before the ticket was declared keeps no ticket: declare first, then change.
Without an id, prints the ticket in force.

Options:
  --for DURATION        how long the changes take: 30m, 2h, 1h30m (at most 7d)
  --clear               withdraw the ticket now
  --state DIR           the agent's state folder (default: ${DEFAULT_STATE_DIR}); the
                        running daemon reads the ticket from it

Example:
  quicksand-agent ticket CHG-4711 --for 2h && apt-get install -y nginx
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
  manifest: {
    ...COMMON,
    ...COST,
    root: { type: 'string' },
    out: { type: 'string' },
    name: { type: 'string' },
    'image-version': { type: 'string' },
    'from-kiwi': { type: 'string' },
    verified: { type: 'string' },
    'from-sbom': { type: 'string' },
  },
  scan: {
    ...COMMON,
    ...COST,
    root: { type: 'string' },
    manifest: { type: 'string' },
    json: { type: 'boolean' },
    send: { type: 'boolean' },
    config: { type: 'string' },
    timeout: { type: 'string' },
  },
  audit: { ...COMMON, ...COST, root: { type: 'string' }, json: { type: 'boolean' } },
  enroll: { ...COMMON, server: { type: 'string' }, secret: { type: 'string' }, state: { type: 'string' }, config: { type: 'string' }, force: { type: 'boolean' } },
  run: {
    ...COMMON,
    root: { type: 'string' },
    manifest: { type: 'string' },
    state: { type: 'string' },
    config: { type: 'string' },
    schedule: { type: 'string' },
    'no-watch': { type: 'boolean' },
    heartbeat: { type: 'string' },
    'reconnect-max': { type: 'string' },
    label: { type: 'string', multiple: true },
  },
  ticket: { ...COMMON, for: { type: 'string' }, clear: { type: 'boolean' }, state: { type: 'string' } },
} satisfies Record<string, ParseArgsConfig['options']>;

type Command = keyof typeof OPTIONS;

/** Runs one agent command line and returns its exit code. Never throws for a user's mistake. */
export async function runAgentCli(argv: string[], io: CliIo): Promise<number> {
  return runCommandLine({ tool: 'quicksand-agent', usage: USAGE, help: HELP, options: OPTIONS }, argv, io, async (cmd: Command, values, positionals) => {
    // Only `ticket` takes an argument: the ticket id.
    if (positionals.length > (cmd === 'ticket' ? 1 : 0)) throw new QuicksandError('USAGE', `unexpected argument "${positionals[cmd === 'ticket' ? 1 : 0]}"`);
    switch (cmd) {
      case 'manifest':
        return await manifestCommand(values as ManifestArgs, io);
      case 'scan':
        return await scanCommand(values as ScanArgs, io);
      case 'audit':
        return await auditCommand(values as AuditArgs, io);
      case 'enroll': {
        const v = values as EnrollArgs;
        const { enrollCommand } = await import('./commands/run.js');
        await enrollCommand(v, path.resolve(v.state ?? DEFAULT_STATE_DIR), io);
        return EXIT_CLEAN;
      }
      case 'run':
        return await runDaemonCommand(values as RunArgs, io);
      case 'ticket': {
        const v = values as { for?: string; clear?: boolean; state?: string };
        const { ticketCommand } = await import('./commands/ticket.js');
        await ticketCommand(positionals[0], v, path.resolve(v.state ?? DEFAULT_STATE_DIR), new Date(), io.stdout);
        return EXIT_CLEAN;
      }
    }
  });
}

interface CostArgs { state?: string; 'max-rate'?: string; 'max-bytes-rate'?: string; nice?: string; 'cross-mounts'?: boolean }
interface ManifestArgs extends CostArgs {
  root?: string;
  out?: string;
  name?: string;
  'image-version'?: string;
  'from-kiwi'?: string;
  verified?: string;
  'from-sbom'?: string;
  quiet?: boolean;
}
interface ScanArgs extends CostArgs { root?: string; manifest?: string; json?: boolean; quiet?: boolean; send?: boolean; config?: string; timeout?: string }
interface EnrollArgs { server?: string; secret?: string; state?: string; config?: string; force?: boolean }
interface RunArgs { root?: string; manifest?: string; state?: string; config?: string; schedule?: string; 'no-watch'?: boolean; heartbeat?: string; 'reconnect-max'?: string; quiet?: boolean; label?: string[] }
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
  if (args['from-kiwi'] !== undefined || args['from-sbom'] !== undefined) return importManifestCommand(args, out, io);
  if (args.verified !== undefined) throw new QuicksandError('USAGE', '--verified goes with --from-kiwi');
  const root = await openRoot(required(args.root, '--root'));
  await assertWritableDir(path.dirname(path.resolve(out)), '--out');
  const t0 = performance.now();
  const policy = defaultPolicy();
  const walk = walkOptions(args, root, io);
  let started;
  try {
    started = await walkWhileCollecting(root, policy, { ...walk.options, onProgress: progress(io, args.quiet, 'manifest') });
  } catch (err) {
    walk.close(0);
    throw err;
  }
  const { walker, walked, packages: pkgs } = started;
  const image = {
    name: args.name ?? (await defaultImageName(root)),
    version: args['image-version'] ?? new Date().toISOString().slice(0, 10),
  };
  // Streamed straight from the walk to the file: a tree of any size costs the same memory.
  const owned = pkgs.owned;
  const records = async function* () {
    for await (const batch of walked) yield batch.map((f) => intoManifestRecord(f, owned));
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

async function importManifestCommand(args: ManifestArgs, out: string, io: CliIo): Promise<number> {
  const sources = [args.root, args['from-kiwi'], args['from-sbom']].filter((v) => v !== undefined);
  if (sources.length > 1) throw new QuicksandError('USAGE', 'use one of --root, --from-kiwi and --from-sbom');
  if (args.verified !== undefined && args['from-kiwi'] === undefined) throw new QuicksandError('USAGE', '--verified goes with --from-kiwi');
  await assertWritableDir(path.dirname(path.resolve(out)), '--out');
  let manifest;
  if (args['from-kiwi'] !== undefined) {
    const file = args['from-kiwi'];
    const { kiwiImageIdentity, manifestFromKiwi, parseKiwiPackages, parseKiwiVerified } = await import('./manifest/import-kiwi.js');
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
    const { manifestFromSbom, parseSbom } = await import('./manifest/import-sbom.js');
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
  if (args.send) {
    const timeout = args.timeout === undefined ? 120 : Number(args.timeout);
    if (!Number.isFinite(timeout) || timeout < 0) throw new QuicksandError('USAGE', `--timeout: expected a number of seconds, got "${args.timeout}"`);
    const { sendReport } = await import('./commands/run.js');
    await sendReport(report, { state: path.resolve(args.state ?? DEFAULT_STATE_DIR), config: args.config, timeoutMs: timeout * 1000, image: report.image }, io);
  }
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

async function runDaemonCommand(args: RunArgs, io: CliIo): Promise<number> {
  const state = path.resolve(args.state ?? DEFAULT_STATE_DIR);
  const root = await openRoot(args.root ?? '/');
  let manifestFile = args.manifest;
  if (manifestFile === undefined) {
    // As audit does: without a manifest the first run's view of the root is the expectation.
    await ensureStateDir(state);
    manifestFile = path.join(state, 'baseline.manifest.json.gz');
    if (!(await exists(manifestFile))) {
      io.stderr(`No manifest given and no baseline yet: recording what ${root.dir || '/'} holds now.\n`);
      await manifestCommand({ root: args.root ?? '/', out: manifestFile, quiet: true, state }, io);
    }
  }
  const manifest = await readManifestFile(manifestFile);
  // Every full scan runs in a child process (`scan --json`, through the stat cache: only what
  // changed since the last one is read). The daemon then never holds a scan's memory: a Node
  // process keeps its high-water mark, and the agent's footprint between scans is what a host
  // pays all day. The child's report is parsed by the report schema like any outside input.
  // A manifest the daemon was handed later (not the one read from the file) is written to the
  // state folder first, so the child always scans against the manifest the watcher uses.
  const manifestFiles = new WeakMap<Manifest, string>([[manifest, path.resolve(manifestFile)]]);
  const fileOf = async (m: Manifest): Promise<string> => {
    let file = manifestFiles.get(m);
    if (file === undefined) {
      file = path.join(state, 'daemon.manifest.json.gz');
      await writeManifestFile(file, m);
      manifestFiles.set(m, file);
    }
    return file;
  };
  const scan = async (r: Root, m: Manifest): Promise<Report> => {
    const { runIsolated } = await import('./daemon/isolated.js');
    const { parseReport } = await import('../shared/report.js');
    const child = await runIsolated(['scan', '--root', r.dir === '' ? '/' : r.dir, '--manifest', await fileOf(m), '--state', state, '--json', '--quiet']);
    if (child.code !== EXIT_CLEAN && child.code !== EXIT_DRIFT) {
      throw new QuicksandError('SCAN_FAILED', `full scan failed (exit ${child.code}): ${child.stderr.trim() || 'no message'}`);
    }
    let value: unknown;
    try {
      value = JSON.parse(child.stdout);
    } catch {
      throw new QuicksandError('SCAN_FAILED', `full scan printed no readable report (${child.stdout.length} bytes); ${child.stderr.trim()}`);
    }
    return parseReport(value, 'full scan report');
  };
  const { runCommand } = await import('./commands/run.js');
  await runCommand(args, { state, root, manifest, scan }, io);
  return EXIT_CLEAN;
}

async function ensureStateDir(state: string): Promise<void> {
  try {
    await mkdir(state, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new QuicksandError('STATE_DIR_UNUSABLE', `cannot create the state folder ${state}: ${(err as Error).message}; run as root or pass --state DIR`);
  }
}

async function auditCommand(args: AuditArgs, io: CliIo): Promise<number> {
  const state = path.resolve(args.state ?? DEFAULT_STATE_DIR);
  const root = args.root ?? '/';
  await ensureStateDir(state);
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
