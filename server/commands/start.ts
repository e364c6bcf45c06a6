// `quicksand-server start`: serve the API and the agent stream on one port.
import { QuicksandError } from '../../shared/errors.js';
import type { OptionValues } from '../../shared/command-line.js';
import { formatDuration, parseDuration } from '../../shared/duration.js';
import { DEFAULT_ALERT_POLICY } from '../alerts/policy.js';
import type { AlertPolicy } from '../alerts/policy.js';
import { startServer } from '../server.js';
import type { RunningServer, ServerOptions } from '../server.js';
import { COMMON, DB_HELP, EXIT_OK, dataFolder, database } from './common.js';
import { describeDatabase } from '../store/open.js';
import type { ServerCliIo } from './common.js';

export const DEFAULT_PORT = 7410;
export const DEFAULT_HOST = '127.0.0.1';
/** What one source address may take: sockets at once, upgrades per second, enrolments per minute. */
export const DEFAULT_LIMITS = { connections: 4096, upgrades: 50, enrolls: 12 } as const;

const THROTTLE_DEFAULT = `${DEFAULT_ALERT_POLICY.throttle.max}/${formatDuration(DEFAULT_ALERT_POLICY.throttle.windowMs)}`;
const DEDUP_DEFAULT = formatDuration(DEFAULT_ALERT_POLICY.dedupMemoryMs);

export const help = `Usage: quicksand-server start [--db FILE|URL] [--port N] [--host ADDR] [--retention-days N] [--digest-sink ID]
                             [--alert-throttle N/DURATION] [--alert-dedup DURATION]
                             [--max-connections-per-address N] [--upgrades-per-address N]
                             [--enrolls-per-address N] [--node-id ID]

Serves the JSON API (/api/v1), /healthz, /metrics and the agent stream
(WebSocket, ${'/api/v1/stream'}) on one port. Creates the database on first start.

Options:
${DB_HELP}  --port N              TCP port (default: ${DEFAULT_PORT}; 0 picks a free one)
  --host ADDR           address to listen on (default: ${DEFAULT_HOST}, this machine only;
                        0.0.0.0 to accept agents from other hosts)
  --retention-days N    prune reports, resolved findings and settled alert deliveries
                        older than N days (default: 0, keep everything); the audit log is
                        never pruned, nor a delivered alert whose resolve is not yet queued
  --digest-sink ID      send a daily digest (08:00 UTC) to this alert sink
  --alert-throttle N/DURATION
                        page at most N times per host per DURATION (default: ${THROTTLE_DEFAULT});
                        changes past it are held and go out together as one alert when
                        the window has room again, so a busy host cannot flood on-call
  --alert-dedup DURATION
                        how long a change stays remembered as alerted (default: ${DEDUP_DEFAULT}):
                        a host that flaps back to a state already paged for within it
                        does not page again. Longer remembers more; shorter re-pages sooner
  --max-connections-per-address N
                        sockets one source address may hold at once (default: ${DEFAULT_LIMITS.connections});
                        raise it when many agents share one NAT address
  --upgrades-per-address N
                        stream connections one address may open per second, counted
                        before authentication (default: ${DEFAULT_LIMITS.upgrades}, bursts of 4 times that)
  --enrolls-per-address N
                        enrolments one address may make per minute (default: ${DEFAULT_LIMITS.enrolls},
                        bursts of at least 20)
  --node-id ID          this process's name among several nodes on one database
                        (default: the hostname and a random suffix); in /healthz,
                        /metrics and the sessions that say which node holds which agent

Durations: a number with a unit, s m h d, or several (90s, 15m, 2h, 1h30m, 30d).

Example:
  quicksand-server start --host 0.0.0.0 --alert-throttle 5/1h --alert-dedup 7d
`;

export const options = {
  ...COMMON,
  port: { type: 'string' },
  host: { type: 'string' },
  'retention-days': { type: 'string' },
  'digest-sink': { type: 'string' },
  'alert-throttle': { type: 'string' },
  'alert-dedup': { type: 'string' },
  'max-connections-per-address': { type: 'string' },
  'upgrades-per-address': { type: 'string' },
  'enrolls-per-address': { type: 'string' },
  'node-id': { type: 'string' },
} as const;


function positive(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[1-9]\d{0,8}$/.test(text)) throw new QuicksandError('USAGE', `--${flag}: expected a whole number of at least 1, got "${text}"`);
  return Number(text);
}

/** Returns only when the server has stopped. */
export async function run(values: OptionValues, positionals: string[], io: ServerCliIo): Promise<number> {
  if (positionals.length > 0) throw new QuicksandError('USAGE', `unexpected argument "${positionals[0]}"`);
  const v = values as { port?: string; host?: string; 'retention-days'?: string; 'digest-sink'?: string; 'alert-throttle'?: string; 'alert-dedup'?: string };
  const retention = v['retention-days'];
  if (retention !== undefined && !/^\d+$/.test(retention)) throw new QuicksandError('USAGE', `--retention-days: expected a whole number of days (0 keeps everything), got "${retention}"`);
  const alertPolicy = parseAlertOptions(v['alert-throttle'], v['alert-dedup']);
  const limits = values as Record<string, string | undefined>;
  const connections = positive('max-connections-per-address', limits['max-connections-per-address']) ?? DEFAULT_LIMITS.connections;
  const upgrades = positive('upgrades-per-address', limits['upgrades-per-address']) ?? DEFAULT_LIMITS.upgrades;
  const enrolls = positive('enrolls-per-address', limits['enrolls-per-address']) ?? DEFAULT_LIMITS.enrolls;
  const nodeId = limits['node-id'];
  if (nodeId !== undefined && !/^[A-Za-z0-9._:-]{1,100}$/.test(nodeId)) throw new QuicksandError('USAGE', `--node-id: expected 1-100 letters, digits or . _ : -, got "${nodeId}"`);
  const db = database(values);
  return await startCommand(db, parsePort(v.port), v.host ?? DEFAULT_HOST, io, {
    dataDir: dataFolder(db),
    maxConnectionsPerAddress: connections,
    upgradeRatePerAddress: upgrades,
    upgradeBurstPerAddress: upgrades * 4,
    enrollRatePerSec: enrolls / 60,
    enrollBurst: Math.max(20, enrolls),
    ...(retention === undefined ? {} : { retentionDays: Number(retention) }),
    ...(v['digest-sink'] === undefined ? {} : { digestSinkId: v['digest-sink'] }),
    ...(alertPolicy === undefined ? {} : { alertPolicy }),
    ...(nodeId === undefined ? {} : { nodeId }),
  });
}

function parsePort(text: string | undefined): number {
  if (text === undefined) return DEFAULT_PORT;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new QuicksandError('USAGE', `--port: expected a port number 0-65535, got "${text}"`);
  return n;
}

/**
 * The alert policy from `--alert-throttle N/DURATION` and `--alert-dedup DURATION` over the
 * defaults; undefined when neither is given. Pure.
 */
export function parseAlertOptions(throttle: string | undefined, dedup: string | undefined): AlertPolicy | undefined {
  if (throttle === undefined && dedup === undefined) return undefined;
  const policy: AlertPolicy = { ...DEFAULT_ALERT_POLICY };
  if (throttle !== undefined) {
    const m = /^\s*(\d+)\s*\/\s*(\S+)\s*$/.exec(throttle);
    const max = m === null ? NaN : Number(m[1]);
    const windowMs = m === null ? null : parseDuration(m[2]!);
    if (m === null || windowMs === null || !Number.isSafeInteger(max) || max < 1) {
      throw new QuicksandError(
        'USAGE',
        `--alert-throttle: expected N/DURATION with N at least 1, like ${THROTTLE_DEFAULT} (at most ${DEFAULT_ALERT_POLICY.throttle.max} alerts per host per ${formatDuration(DEFAULT_ALERT_POLICY.throttle.windowMs)}), got "${throttle}"`,
      );
    }
    policy.throttle = { max, windowMs };
  }
  if (dedup !== undefined) {
    const ms = parseDuration(dedup);
    if (ms === null) throw new QuicksandError('USAGE', `--alert-dedup: expected a duration like ${DEDUP_DEFAULT}, 12h or 1h30m (units s, m, h, d), got "${dedup}"`);
    policy.dedupMemoryMs = ms;
  }
  return policy;
}

async function startCommand(db: string, port: number, host: string, io: ServerCliIo, extra: Omit<ServerOptions, 'db' | 'port' | 'host'> = {}): Promise<number> {
  let server: RunningServer;
  try {
    server = await startServer({ db, port, host, ...extra, log: (line) => io.stderr(`${new Date().toISOString()} ${line}\n`) });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new QuicksandError('USAGE', `port ${port} on ${host} is already in use: pass --port N`);
    if (code === 'EADDRNOTAVAIL') throw new QuicksandError('USAGE', `--host ${host} is not an address of this machine`);
    throw err;
  }
  io.stdout(`quicksand-server listening on ${server.url} (database ${describeDatabase(db)}, node ${server.nodeId})\n`);
  await io.stopSignal;
  await server.close();
  return EXIT_OK;
}
