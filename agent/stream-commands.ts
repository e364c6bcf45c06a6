// The agent commands that talk to a server: enroll, run (the daemon) and scan --send.
import { existsSync } from 'node:fs';
import { hostname, release } from 'node:os';
import path from 'node:path';
import cron from 'node-cron';
import { QuicksandError } from '../shared/errors.js';
import { parseLabelArgs } from '../shared/labels.js';
import type { Manifest } from '../shared/manifest.js';
import type { AgentConfig } from '../shared/protocol.js';
import type { Report } from '../shared/report.js';
import { CONFIG_NAME, SYSTEM_CONFIG, readAgentConfig, writeAgentConfig } from './config.js';
import { startDaemon } from './daemon.js';
import { enrollAgent } from './enroll.js';
import { createOutbox } from './outbox.js';
import type { Outbox } from './outbox.js';
import type { Root } from './root.js';
import { openStateDb } from './state-db.js';
import { createTransport } from './transport.js';
import { currentTicket, stampTicket } from './ticket.js';
import { baselineApplies, fetchServerBaseline, observeAsManifest, readServerBaseline, uploadObservation, writeServerBaseline } from './server-baseline.js';
import type { CommandFrame, HelloFrame } from '../shared/protocol.js';
import { readMachineFacts } from './deliver/machine.js';
import { AGENT_VERSION } from './version.js';
import { heapCompactor } from './compact.js';

export interface StreamIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM); the daemon then shuts down. */
  stopSignal?: Promise<void>;
}

/** Where the agent's identity lives: --config, else the state folder, else /etc/quicksand. */
export function resolveConfigFile(state: string, explicit: string | undefined): string {
  if (explicit !== undefined) return path.resolve(explicit);
  const inState = path.join(state, CONFIG_NAME);
  if (existsSync(inState) || !existsSync(SYSTEM_CONFIG)) return inState;
  return SYSTEM_CONFIG;
}

export async function enrollCommand(args: { server?: string; secret?: string; config?: string; force?: boolean }, state: string, io: StreamIo): Promise<void> {
  if (args.server === undefined || args.server === '') throw new QuicksandError('USAGE', '--server is required');
  if (args.secret === undefined || args.secret === '') throw new QuicksandError('USAGE', '--secret is required');
  if (!/^https?:\/\/[^/]/.test(args.server)) throw new QuicksandError('USAGE', `--server: expected a URL like http://quicksand.example:7410, got "${args.server}"`);
  const file = args.config !== undefined ? path.resolve(args.config) : path.join(state, CONFIG_NAME);
  if (existsSync(file) && !args.force) {
    const current = await readAgentConfig(file).catch(() => null);
    throw new QuicksandError('USAGE', `this host is already enrolled${current ? ` as agent ${current.agentId} with ${current.server}` : ''} (${file}); pass --force to enrol it again`);
  }
  const config = await enrollAgent(args.server, args.secret, hostname(), (await readMachineFacts()).machineId);
  await writeAgentConfig(file, config);
  io.stdout(`enrolled as agent ${config.agentId} with ${config.server}; identity in ${file}\n`);
}

/** What hello says about the host: the server tells two machines on one identity apart by machine-id and boot id. */
async function hostFacts(): Promise<HelloFrame['host']> {
  return { hostname: hostname(), os: `${process.platform} ${release()}`, agentVersion: AGENT_VERSION, ...(await readMachineFacts()) };
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
}

/** A `--flag SECONDS` option in milliseconds; `fallbackSeconds` when it is not given. */
export function secondsOption(text: string | undefined, flag: string, fallbackSeconds: number): number {
  if (text === undefined) return fallbackSeconds * 1000;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new QuicksandError('USAGE', `${flag}: expected a number of seconds, got "${text}"`);
  return n * 1000;
}

/** The daemon: runs until the stop signal. */
export async function runCommand(
  args: RunArgs,
  ctx: { state: string; root: Root; manifest: Manifest; scan: (root: Root, manifest: Manifest) => Promise<Report> },
  io: StreamIo,
): Promise<void> {
  const schedule = args.schedule;
  if (schedule !== undefined && !cron.validate(schedule)) throw new QuicksandError('USAGE', `--schedule: "${schedule}" is not a cron expression (e.g. "*/15 * * * *")`);
  const capMs = secondsOption(args['reconnect-max'], '--reconnect-max', 300);
  const heartbeatMs = secondsOption(args.heartbeat, '--heartbeat', 30);
  // Declared on every connection, also when empty: a restart without --label withdraws them.
  const labels = parseLabelArgs(args.label ?? []);
  const config = await readAgentConfig(resolveConfigFile(ctx.state, args.config));
  const db = openStateDb(ctx.state);
  const outbox = createOutbox(db);
  const log = (line: string): void => io.stderr(`${new Date().toISOString()} ${line}\n`);
  // A version kept from an earlier re-baseline is what this host is expected to hold, as long as
  // it extends the image of the manifest given now (a host rebuilt from a new image starts over).
  let manifest = ctx.manifest;
  let baselineVersion: number | undefined;
  const kept = await readServerBaseline(ctx.state, config.agentId).catch((err: unknown) => {
    log(`kept baseline not used: ${(err as Error).message}`);
    return null;
  });
  if (kept !== null && baselineApplies(kept, ctx.manifest)) {
    manifest = kept.manifest;
    baselineVersion = kept.version;
  } else if (kept !== null) {
    log(`kept baseline version ${kept.version} extends image ${kept.image.name} ${kept.image.version}, not ${ctx.manifest.image.name} ${ctx.manifest.image.version}: not used`);
  }

  // Re-baseline exchanges, one at a time and in order: upload what the host holds, fetch the result.
  let exchanges: Promise<void> = Promise.resolve();
  const exchange = (what: string, fn: () => Promise<void>): void => {
    exchanges = exchanges.then(fn).catch((err: unknown) => log(`${what} failed: ${err instanceof Error ? err.message : String(err)}`));
  };
  const onCommand = (c: CommandFrame): void => {
    log(`server asked for ${c.command}${c.baseline === undefined ? '' : ` (baseline version ${c.baseline})`}`);
    const version = c.baseline;
    switch (c.command) {
      case 'scan-now':
        void daemon.requestScan('server command');
        return;
      case 'upload-observation':
        if (version === undefined) return log('upload-observation without a baseline version: ignored');
        return exchange(`upload for baseline version ${version}`, async () => {
          // Between event batches: the observation is one consistent walk of the root.
          const observation = await daemon.exclusive(() => observeAsManifest(ctx.root, manifest, ctx.state, new Date()));
          await uploadObservation(config, version, { baseline: baselineVersion ?? null, observation, expected: manifest });
          log(`observation uploaded for baseline version ${version}: ${observation.packages.length} packages, ${observation.files.length} paths`);
        });
      case 'fetch-baseline':
        return exchange('fetching the baseline', async () => {
          const fetched = await fetchServerBaseline(config);
          if (!baselineApplies(fetched, ctx.manifest)) {
            return log(`baseline version ${fetched.version} extends image ${fetched.image.name} ${fetched.image.version}, not ${ctx.manifest.image.name} ${ctx.manifest.image.version}: not used`);
          }
          if (fetched.version === baselineVersion) return;
          await writeServerBaseline(ctx.state, fetched);
          manifest = fetched.manifest;
          baselineVersion = fetched.version;
          await daemon.replaceManifest(fetched.manifest);
          log(`scanning against baseline version ${fetched.version} from now on`);
        });
    }
  };
  const transport = createTransport({
    config,
    outbox,
    host: await hostFacts(),
    image: { name: ctx.manifest.image.name, version: ctx.manifest.image.version },
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
    whenQuiet: heapCompactor(),
  });
  log(`agent ${config.agentId} running: watching ${ctx.root.dir || '/'}${args['no-watch'] === true ? ' (realtime watch off)' : ''}${baselineVersion === undefined ? '' : ` against baseline version ${baselineVersion}`}, full scans on "${daemon.schedule}", sending to ${config.server}`);
  await (io.stopSignal ?? new Promise<void>(() => {}));
  log('stopping');
  await exchanges;
  await daemon.stop();
  db.close();
}

/**
 * `scan --send`: puts the report in the outbox and delivers everything waiting there; returns
 * once the server has acked this report. On timeout the report stays queued for the next run.
 */
export async function sendReport(report: Report, opts: { state: string; config?: string; timeoutMs: number; image: { name: string; version: string } }, io: StreamIo): Promise<void> {
  const config: AgentConfig = await readAgentConfig(resolveConfigFile(opts.state, opts.config));
  const db = openStateDb(opts.state);
  try {
    const outbox: Outbox = createOutbox(db);
    const entry = outbox.enqueue(stampTicket(report, currentTicket(opts.state, new Date(), (line) => io.stderr(`${line}\n`))), 'full', new Date());
    let refused: string | null = null;
    let done!: () => void;
    const delivered = new Promise<void>((resolve) => (done = resolve));
    const transport = createTransport({
      config,
      outbox,
      host: await hostFacts(),
      image: opts.image,
      backoff: { firstMaxMs: 200, baseMs: 500, capMs: 5_000 },
      log: (line) => io.stderr(`${line}\n`),
      onRefused: (status, body) => {
        refused = `${status} ${body}`;
        done();
      },
      onAck: () => {
        // Earlier reports of a previous offline run go first; this one is delivered when no
        // entry up to its seq is left.
        const head = outbox.pending(0, 1)[0];
        if (head === undefined || head.seq > entry.seq) done();
      },
    });
    transport.start();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      delivered.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), opts.timeoutMs))),
    ]);
    clearTimeout(timer);
    await transport.stop();
    if (refused !== null) {
      const revoked = (refused as string).includes('AGENT_TOKEN_REVOKED');
      throw new QuicksandError(revoked ? 'AGENT_TOKEN_REVOKED' : 'AGENT_TOKEN_INVALID', `${config.server} refused this agent's token (${revoked ? 'revoked' : 'unknown'}); enrol again with \`quicksand-agent enroll --force\`. Report ${entry.seq} stays in the outbox.`);
    }
    if (timedOut) {
      throw new QuicksandError('DELIVERY_TIMEOUT', `${config.server} did not acknowledge report ${entry.seq} within ${opts.timeoutMs / 1000} s; it stays in the outbox (${outbox.depth()} waiting) and goes with the next delivery`);
    }
    io.stderr(`report ${entry.seq} delivered to ${config.server}\n`);
  } finally {
    db.close();
  }
}
