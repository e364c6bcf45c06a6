// `quicksand-agent run`: the daemon. Watches and scans the root, streams every report to the
// server through the outbox, and follows the server's commands (scan now, re-baseline).
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { OptionValues } from '../../shared/command-line.js';
import { QuicksandError } from '../../shared/errors.js';
import { parseLabelArgs } from '../../shared/labels.js';
import type { Manifest } from '../../shared/manifest.js';
import type { Report } from '../../shared/report.js';
import type { AgentConfig, CommandFrame } from '../../shared/protocol.js';
import { heapCompactor } from '../daemon/compact.js';
import { startDaemon } from '../daemon/daemon.js';
import { isCronExpression } from '../daemon/schedule.js';
import { readAgentConfig, resolveConfigFile } from '../deliver/config.js';
import { createOutbox } from '../deliver/outbox.js';
import { baselineApplies, fetchServerBaseline, observeAsManifest, readServerBaseline, uploadObservation, writeServerBaseline } from '../deliver/server-baseline.js';
import { currentTicket } from '../deliver/ticket.js';
import { createTransport } from '../deliver/transport.js';
import { hostFacts } from '../deliver/version.js';
import { dropManifestIndexes, openManifestIndex } from '../manifest/index-db.js';
import type { ManifestIndex } from '../manifest/index-db.js';
import { readManifestFile, writeManifestFile } from '../manifest/io.js';
import { openRoot } from '../root.js';
import type { Root } from '../root.js';
import { openStateDb } from '../state-db.js';
import { COMMON, DEFAULT_STATE_DIR, EXIT_CLEAN, EXIT_DRIFT, ensureStateDir, exists, noArguments, parseThreads } from './common.js';
import type { CliIo } from './common.js';
import { manifestCommand } from './manifest.js';
import { serverUrls } from '../deliver/servers.js';

/**
 * Threads a full scan's child hashes and walks on (`scan --threads`) unless `run --threads` says
 * otherwise. Each thread is an isolate with allocator arenas of its own, and the child's peak is
 * what the host pays on top of the daemon every hour; a scheduled scan has an hour to finish, and
 * only the first one hashes every file.
 */
export const FULL_SCAN_THREADS = 1;

/** Full scans: hourly, at a minute derived from the agent id (see daemon/schedule.ts). */
const DEFAULT_SCHEDULE = 'hourly at this host\'s own minute';

export const help = `Usage: quicksand-agent run [--root DIR] [--manifest FILE] [--state DIR] [--label NAME=VALUE] [--containers]

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
  --containers          every full scan also reads this container host's containers and
                        reports each one's drift from its own image (as scan --containers)
  --image-check-hours H with --containers: how often every file of the image layers is
                        read (default: 24; 0: every scan); in between, a scan checks the
                        layers' folders only (a file rewritten in place is seen at the next)
  --manifest-timeout SECONDS
                        with --containers: how long the server may take to send an image's
                        uploaded manifest (default: 5); then the kept seal is used
  --threads N           threads every full scan hashes and walks on (1-64; default: ${FULL_SCAN_THREADS},
                        the least memory beside the daemon); more make the first scan of a
                        large tree, which reads every file, end sooner

Stops on SIGINT/SIGTERM.
`;

export const options = {
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
  containers: { type: 'boolean' },
  'image-check-hours': { type: 'string' },
  'manifest-timeout': { type: 'string' },
  threads: { type: 'string' },
} as const;

export async function run(values: OptionValues, positionals: string[], io: CliIo): Promise<number> {
  noArguments(positionals);
  const args = values as RunArgs & { root?: string; manifest?: string; state?: string };
  const state = path.resolve(args.state ?? DEFAULT_STATE_DIR);
  const root = await openRoot(args.root ?? '/');
  // An agent that could not send is no daemon: say so before a first baseline takes a minute.
  parseRunOptions(args);
  // A bad value would otherwise fail every scheduled scan's child, an hour apart.
  const childArgs = fullScanArgs(args);
  await ensureStateDir(state);
  const config = await readAgentConfig(resolveConfigFile(state, args.config));
  let manifestFile = args.manifest;
  if (manifestFile === undefined) {
    // As audit does: without a manifest the first run's view of the root is the expectation.
    manifestFile = path.join(state, 'baseline.manifest.json.gz');
    if (!(await exists(manifestFile))) {
      io.stderr(`No manifest given and no baseline yet: recording what ${root.dir || '/'} holds now.\n`);
      await manifestCommand({ root: args.root ?? '/', out: manifestFile, state }, io);
    }
  }
  // Every full scan runs in a child process (`scan --json`, through the stat cache: only what
  // changed since the last one is read). The daemon then never holds a scan's memory: a Node
  // process keeps its high-water mark, and the agent's footprint between scans is what a host
  // pays all day. The child's report is parsed by the report schema like any outside input.
  // The child reads the manifest file the daemon's index was loaded from: the same records.
  const compact = heapCompactor();
  const scan = async (r: Root, m: ManifestIndex): Promise<Report> => {
    const { runIsolated } = await import('../daemon/isolated.js');
    const { parseReport } = await import('../../shared/report.js');
    // The child finds the agent's identity as run did, so it can fetch images' uploaded manifests.
    const identity = args.config === undefined ? [] : ['--config', path.resolve(args.config)];
    const child = await runIsolated(['scan', '--root', r.dir === '' ? '/' : r.dir, '--manifest', m.file, '--state', state, ...identity, '--json', '--quiet', ...childArgs], { beforeSpawn: compact });
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
  await runCommand(args, { state, root, manifestFile, scan, config, compact }, io);
  return EXIT_CLEAN;
}

export interface RunArgs {
  config?: string;
  schedule?: string;
  /** True: no realtime watch, scheduled full scans only. */
  'no-watch'?: boolean;
  'reconnect-max'?: string;
  heartbeat?: string;
  /** `NAME=VALUE` labels this host declares (repeatable). */
  label?: string[];
  containers?: boolean;
  'image-check-hours'?: string;
  'manifest-timeout'?: string;
  threads?: string;
}

/** What every full scan's child is told beyond its root, manifest and state: its threads and containers, checked here once (pure). */
export function fullScanArgs(args: RunArgs): string[] {
  return ['--threads', String(parseThreads(args.threads, `the daemon's default of ${FULL_SCAN_THREADS}`) ?? FULL_SCAN_THREADS), ...containerScanArgs(args)];
}

/** What a full scan's child is told about containers, checked here once (pure). */
export function containerScanArgs(args: RunArgs): string[] {
  const hours = args['image-check-hours'];
  const timeout = args['manifest-timeout'];
  if (!args.containers) {
    if (hours !== undefined || timeout !== undefined) throw new QuicksandError('USAGE', `${hours !== undefined ? '--image-check-hours' : '--manifest-timeout'} applies to containers only: add --containers`);
    return [];
  }
  const out = ['--containers'];
  for (const [flag, value] of [['--image-check-hours', hours], ['--manifest-timeout', timeout]] as const) {
    if (value === undefined) continue;
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new QuicksandError('USAGE', `${flag}: expected a non-negative number, got "${value}"`);
    out.push(flag, value);
  }
  return out;
}

/** A `--flag SECONDS` option in milliseconds; `fallbackSeconds` when it is not given. */
export function secondsOption(text: string | undefined, flag: string, fallbackSeconds: number): number {
  if (text === undefined) return fallbackSeconds * 1000;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new QuicksandError('USAGE', `${flag}: expected a number of seconds, got "${text}"`);
  return n * 1000;
}

/** The daemon's own options, checked (pure). */
export function parseRunOptions(args: RunArgs): { schedule: string | undefined; capMs: number; heartbeatMs: number; labels: Record<string, string> } {
  const schedule = args.schedule;
  if (schedule !== undefined && !isCronExpression(schedule)) throw new QuicksandError('USAGE', `--schedule: "${schedule}" is not a cron expression (e.g. "*/15 * * * *")`);
  return {
    schedule,
    capMs: secondsOption(args['reconnect-max'], '--reconnect-max', 300),
    heartbeatMs: secondsOption(args.heartbeat, '--heartbeat', 30),
    // Declared on every connection, also when empty: a restart without --label withdraws them.
    labels: parseLabelArgs(args.label ?? []),
  };
}

/** The daemon: runs until the stop signal. */
export async function runCommand(
  args: RunArgs,
  ctx: { state: string; root: Root; manifestFile: string; scan: (root: Root, manifest: ManifestIndex) => Promise<Report>; config: AgentConfig; compact?: () => void },
  io: CliIo,
): Promise<void> {
  const { schedule, capMs, heartbeatMs, labels } = parseRunOptions(args);
  const { config } = ctx;
  const db = openStateDb(ctx.state);
  const outbox = createOutbox(db);
  const log = (line: string): void => io.stderr(`${new Date().toISOString()} ${line}\n`);
  // The daemon holds no manifest record: its index lives in the state database (index-db.ts),
  // and an event batch reads the few records it compares from there. The index is loaded in a
  // child process: the load's allocator memory must not stay with the daemon all day.
  const openIndex = async (file: string): Promise<ManifestIndex> => {
    const { loadIndexIsolated } = await import('../daemon/index-loader.js');
    await loadIndexIsolated(ctx.state, file, ctx.compact);
    return openManifestIndex(db, file);
  };
  const given = await openIndex(ctx.manifestFile);
  const image = given.header.image;
  /** A baseline version the server derived, as a manifest file of its own and its index. */
  const indexBaseline = async (version: number, m: Manifest): Promise<ManifestIndex> => {
    const file = path.join(ctx.state, `daemon-baseline-${version}.manifest.json.gz`);
    await writeManifestFile(file, m);
    return openIndex(file);
  };
  /** Drops the indexes and baseline files of versions no longer scanned against. */
  const forgetOldBaselines = async (keep: ManifestIndex): Promise<void> => {
    for (const file of dropManifestIndexes(db, [given.file, keep.file])) {
      if (path.basename(file).startsWith('daemon-baseline-') && path.dirname(file) === path.resolve(ctx.state)) await rm(file, { force: true });
    }
  };
  // A version kept from an earlier re-baseline is what this host is expected to hold, as long as
  // it extends the image of the manifest given now (a host rebuilt from a new image starts over).
  let manifest = given;
  let baselineVersion: number | undefined;
  const kept = await readServerBaseline(ctx.state, config.agentId).catch((err: unknown) => {
    log(`kept baseline not used: ${(err as Error).message}`);
    return null;
  });
  if (kept !== null && baselineApplies(kept, given.header)) {
    manifest = await indexBaseline(kept.version, kept.manifest);
    baselineVersion = kept.version;
  } else if (kept !== null) {
    log(`kept baseline version ${kept.version} extends image ${kept.image.name} ${kept.image.version}, not ${image.name} ${image.version}: not used`);
  }
  await forgetOldBaselines(manifest);

  // The server's commands that touch what the host is scanned against, one at a time and in
  // order: upload what the host holds, fetch the result, and a scan asked for after them runs
  // against the version they fetched, never beside the switch.
  let exchanges: Promise<void> = Promise.resolve();
  const exchange = (what: string, fn: () => Promise<void>): void => {
    exchanges = exchanges.then(fn).catch((err: unknown) => log(`${what} failed: ${err instanceof Error ? err.message : String(err)}`));
  };
  /** Fetches the server's current version and scans against it from now on (at once). */
  const adoptServerBaseline = async (): Promise<void> => {
    const fetched = await fetchServerBaseline(config);
    if (!baselineApplies(fetched, given.header)) {
      return log(`baseline version ${fetched.version} extends image ${fetched.image.name} ${fetched.image.version}, not ${image.name} ${image.version}: not used`);
    }
    if (fetched.version === baselineVersion) return;
    await writeServerBaseline(ctx.state, fetched);
    manifest = await indexBaseline(fetched.version, fetched.manifest);
    baselineVersion = fetched.version;
    await daemon.replaceManifest(manifest);
    await forgetOldBaselines(manifest);
    log(`scanning against baseline version ${fetched.version} from now on`);
  };
  const onCommand = (c: CommandFrame): void => {
    log(`server asked for ${c.command}${c.baseline === undefined ? '' : ` (baseline version ${c.baseline})`}`);
    const version = c.baseline;
    switch (c.command) {
      case 'scan-now':
        return exchange('the commanded scan', () => daemon.requestScan('server command'));
      case 'upload-observation':
        if (version === undefined) return log('upload-observation without a baseline version: ignored');
        return exchange(`upload for baseline version ${version}`, async () => {
          // Between event batches: the observation is one consistent walk of the root.
          const observation = await daemon.exclusive(() => observeAsManifest(ctx.root, manifest.header, ctx.state, new Date()));
          const answer = await uploadObservation(config, version, { baseline: baselineVersion ?? null, observation, expected: await readManifestFile(manifest.file) });
          log(`observation uploaded for baseline version ${version}: ${observation.packages.length} packages, ${observation.files.length} paths`);
          // Derived at once: switch now, in this same turn, so a scan asked for meanwhile waits for it.
          if (answer.state === 'ready') await adoptServerBaseline();
        });
      case 'fetch-baseline':
        return exchange('fetching the baseline', adoptServerBaseline);
    }
  };
  const transport = createTransport({
    config,
    outbox,
    host: await hostFacts(),
    image: { name: image.name, version: image.version },
    labels,
    baseline: () => baselineVersion,
    heartbeatMs,
    backoff: { firstMaxMs: Math.min(5_000, capMs), baseMs: Math.min(2_000, capMs), capMs },
    log,
    onCommand,
  });
  const daemon = startDaemon({
    root: ctx.root,
    manifest,
    outbox,
    transport,
    hostId: config.agentId,
    scan: ctx.scan,
    ...(schedule === undefined ? {} : { schedule }),
    realtime: args['no-watch'] !== true,
    log,
    ticket: () => currentTicket(ctx.state, new Date(), log),
    whenQuiet: ctx.compact ?? heapCompactor(),
  });
  log(`agent ${config.agentId} running: watching ${ctx.root.dir || '/'}${args['no-watch'] === true ? ' (realtime watch off)' : ''}${baselineVersion === undefined ? '' : ` against baseline version ${baselineVersion}`}, full scans on "${daemon.schedule}", sending to ${serverUrls(config).join(', ')}`);
  await (io.stopSignal ?? new Promise<void>(() => {}));
  log('stopping');
  await exchanges;
  await daemon.stop();
  db.close();
}
