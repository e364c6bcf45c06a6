// `quicksand-agent scan`: compare a root with its image's manifest and report the drift;
// with --send, also deliver the report to the server.
import path from 'node:path';
import { QuicksandError } from '../../shared/errors.js';
import type { OptionValues } from '../../shared/command-line.js';
import type { AgentConfig } from '../../shared/protocol.js';
import { formatReport } from '../diff/format-report.js';
import { scanSource } from '../diff/scan.js';
import { openManifestSource } from '../manifest/stream.js';
import { openRoot } from '../root.js';
// Loaded with the walk anyway (fingerprint/walk.ts): no cost to a scan's start-up.
import { DEFAULT_TRACKED } from '../../shared/policy.js';
import { COMMON, COST, COST_HELP, DEFAULT_STATE_DIR, EXIT_CLEAN, EXIT_DRIFT, noArguments, openCleanPathsFor, required, walkOptions, walkThreadsAhead } from './common.js';
import { startProgress, expectedPaths } from './progress.js';
import type { CliIo, CostArgs } from './common.js';

export const help = `Usage: quicksand-agent scan --root DIR --manifest FILE [--json] [--send] [--state DIR] [--containers]

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
  --containers          also read every container of this container host (Docker overlay2,
                        Podman/CRI-O, containerd and Docker's containerd image store) from
                        the host's disk and report each one's drift from its own image,
                        without mounting, exec'ing or touching a container; an executable
                        added to a container is critical
  --image-check-hours H with --containers: how often every file of the image layers is
                        read (default: 24; 0: every scan); in between, a scan checks the
                        layers' folders only (a file rewritten in place is seen at the next)
  --manifest-timeout SECONDS
                        with --containers on an enrolled agent: how long the server may take
                        to send an image's uploaded manifest (default: 5); then the kept
                        seal is used, with a warning
  --timeout SECONDS     how long --send waits for the ack (default: 120); the report
                        stays in the outbox when it runs out, and goes with the next send
${COST_HELP}  -q, --quiet           no progress on stderr

Exit codes: 0 no drift (info findings only at most), 1 drift (of the host, or with
--containers of any container), 2 error (also when --send could not deliver).

Example:
  quicksand-agent scan --root / --manifest /etc/quicksand/image.json.gz || echo "this host is a pet"
`;

export const options = {
  ...COMMON,
  ...COST,
  root: { type: 'string' },
  manifest: { type: 'string' },
  json: { type: 'boolean' },
  send: { type: 'boolean' },
  config: { type: 'string' },
  timeout: { type: 'string' },
  containers: { type: 'boolean' },
  'image-check-hours': { type: 'string' },
  'manifest-timeout': { type: 'string' },
} as const;

export interface ScanArgs extends CostArgs { root?: string; manifest?: string; json?: boolean; quiet?: boolean; send?: boolean; config?: string; timeout?: string; containers?: boolean; 'image-check-hours'?: string; 'manifest-timeout'?: string }

export async function run(values: OptionValues, positionals: string[], io: CliIo): Promise<number> {
  noArguments(positionals);
  return scanCommand(values as ScanArgs, io);
}

export async function scanCommand(args: ScanArgs, io: CliIo): Promise<number> {
  const manifestFile = required(args.manifest, '--manifest');
  const root = await openRoot(args.root ?? '/');
  // What --send needs is checked before the scan, not after it.
  const state = path.resolve(args.state ?? DEFAULT_STATE_DIR);
  const timeout = args.timeout === undefined ? 120 : Number(args.timeout);
  if (!Number.isFinite(timeout) || timeout < 0) throw new QuicksandError('USAGE', `--timeout: expected a number of seconds, got "${args.timeout}"`);
  const checkHours = seconds(args['image-check-hours'], 24, '--image-check-hours');
  const manifestTimeout = seconds(args['manifest-timeout'], 5, '--manifest-timeout');
  // The identity's schema is zod's (shared/protocol.ts, ~90 modules): loaded only when asked for.
  const identityOf = async (): Promise<AgentConfig> => {
    const { readAgentConfig, resolveConfigFile } = await import('../deliver/config.js');
    return readAgentConfig(resolveConfigFile(state, args.config));
  };
  const config = args.send ? await identityOf() : undefined;
  const walk = walkOptions(args, root, io);
  let report;
  let files = 0;
  let clean;
  let ahead;
  const shown = startProgress(io, args.quiet, 'scan', args.quiet ? undefined : await expectedPaths(root.dir, walk.lastWalk(), DEFAULT_TRACKED));
  try {
    ahead = await walkThreadsAhead(args, root, walk.options);
    const source = await openManifestSource(manifestFile);
    // Verdicts are remembered against the manifest's bytes: another manifest starts afresh.
    const identity = walk.options.cache === undefined ? undefined : source.identity?.();
    clean = identity === undefined ? undefined : openCleanPathsFor(args, root, identity, walk.options);
    report = await scanSource(root, source, { ...walk.options, ...(clean ? { clean } : {}), ...(ahead ? { walkPool: ahead } : {}), ...(shown.onProgress ? { onProgress: shown.onProgress } : {}), onStats: (s) => (files = s.files) });
  } finally {
    await ahead?.close();
    shown.stop();
    walk.close(files);
    if (files > 0) clean?.prune(files);
    clean?.close();
  }
  if (args.containers) {
    const { scanContainers } = await import('../containers/scan-containers.js');
    const { defaultPolicy } = await import('../../shared/policy.js');
    // The state folder keeps the image layers' overlay attributes: read once, not every scan.
    // An enrolled agent (with --send, or a state folder holding its identity, as `run`'s scans
    // have) holds each image's containers to the manifest uploaded for the image, if any.
    const identity = config ?? (await identityOf().catch(() => undefined));
    const imageManifest = identity === undefined ? undefined : (await import('../deliver/image-manifests.js')).imageManifestSource(identity);
    const found = await scanContainers(root.dir === '' ? '/' : root.dir, defaultPolicy(), { stateDir: state, fullCheckMs: checkHours * 3600_000, manifestTimeoutMs: manifestTimeout * 1000, ...(imageManifest ? { imageManifest } : {}) });
    report = { ...report, containers: found.containers, warnings: [...report.warnings, ...found.warnings] };
  }
  io.stdout(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report, manifestFile));
  if (config !== undefined) {
    const { sendReport } = await import('../deliver/send-report.js');
    await sendReport(report, { state, config, timeoutMs: timeout * 1000, image: report.image }, io);
  }
  const drift = report.summary.status === 'drift' || (report.containers ?? []).some((c) => c.summary.status === 'drift');
  return drift ? EXIT_DRIFT : EXIT_CLEAN;
}

/** A non-negative number option, or its default. */
function seconds(value: string | undefined, dflt: number, name: string): number {
  const n = value === undefined ? dflt : Number(value);
  if (!Number.isFinite(n) || n < 0) throw new QuicksandError('USAGE', `${name}: expected a non-negative number, got "${value}"`);
  return n;
}
