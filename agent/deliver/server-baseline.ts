// The agent's side of a re-baseline: it uploads what its host holds now (a manifest of the root
// under the expected manifest's policy), then fetches the version the server derived from it and
// keeps it in the state folder as the manifest it scans against. Both with its own agent token.
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { constants } from 'node:buffer';
import { gunzipSync, gzipSync } from 'node:zlib';
import { hostBaselineSchema } from '../../shared/baseline.js';
import type { HostBaseline } from '../../shared/baseline.js';
import { QuicksandError } from '../../shared/errors.js';
import type { Manifest } from '../../shared/manifest.js';
import type { AgentConfig } from '../../shared/protocol.js';
import { formatIssues } from '../../shared/schema-errors.js';
import { manifestFromObservation } from '../manifest/build.js';
import { observe } from '../fingerprint/observe.js';
import { createConfigTextReader } from '../fingerprint/config-text.js';
import type { Root } from '../root.js';
import { openStatCache } from '../fingerprint/stat-cache.js';
import { serverUrls, withAnyServer } from './servers.js';

export const SERVER_BASELINE_FILE = 'server-baseline.json.gz';

/** What the host holds now, as a manifest with the expected one's policy and image identity. */
export async function observeAsManifest(root: Root, expected: Pick<Manifest, 'policy' | 'image'>, state: string, now: Date): Promise<Manifest> {
  // Through the stat cache: only what changed since the last scan is read again.
  const cache = openStatCache(state, root.dir === '' ? '/' : root.dir);
  try {
    const obs = await observe(root, expected.policy, { cache });
    const manifest = manifestFromObservation(obs, expected.policy, { name: expected.image.name, version: expected.image.version }, now);
    // As `manifest` does: the next version carries its config files' text too.
    await createConfigTextReader(root, expected.policy).fillRecords(manifest.files);
    return manifest;
  } finally {
    cache.close();
  }
}

/** One call to whichever server answers (any node of the deployment has the same answer); `signal` may cut it short. */
export function call(config: AgentConfig, method: 'GET' | 'POST', route: string, body?: unknown, signal?: AbortSignal): Promise<unknown> {
  return withAnyServer(serverUrls(config), (server) => callServer(server, config.token, method, route, body, signal));
}

async function callServer(server: string, token: string, method: 'GET' | 'POST', route: string, body?: unknown, signal?: AbortSignal): Promise<unknown> {
  const url = `${server}${route}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: signal === undefined ? AbortSignal.timeout(300_000) : AbortSignal.any([signal, AbortSignal.timeout(300_000)]),
    });
  } catch (err) {
    throw new QuicksandError('SERVER_UNREACHABLE', `cannot reach ${server}: ${(err as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) throw new QuicksandError(res.status === 401 ? 'AGENT_TOKEN_INVALID' : res.status === 404 ? 'NOT_FOUND' : 'INTERNAL', `${method} ${route}: the server answered ${res.status} ${text.slice(0, 300)}`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new QuicksandError('INTERNAL', `${method} ${route}: the server's answer is not JSON`);
  }
}

/** Uploads the observation for version `version`; `baseline` is the server version scanned against now. */
export async function uploadObservation(config: AgentConfig, version: number, body: { baseline: number | null; observation: Manifest; expected: Manifest }): Promise<{ state?: string }> {
  const answer = await call(config, 'POST', `/api/v1/agent/baselines/${version}/observation`, body);
  // Only `state` is read (`ready`: the version can be fetched now); anything else is no answer.
  const state = (answer as { state?: unknown } | null)?.state;
  return typeof state === 'string' ? { state } : {};
}

/** The version to scan against, checked: it must be this host's and of the image it runs. */
export async function fetchServerBaseline(config: AgentConfig): Promise<HostBaseline> {
  return checkBaseline(await call(config, 'GET', '/api/v1/agent/baseline'), `${config.server} baseline`, config.agentId);
}

function checkBaseline(value: unknown, source: string, agentId: string): HostBaseline {
  const parsed = hostBaselineSchema.safeParse(value);
  if (!parsed.success) throw new QuicksandError('MANIFEST_INVALID', `${source} is not a valid baseline:\n${formatIssues(parsed.error)}`);
  if (parsed.data.host !== agentId) throw new QuicksandError('MANIFEST_INVALID', `${source} belongs to host ${parsed.data.host}, not to this agent (${agentId})`);
  return parsed.data;
}

export async function writeServerBaseline(state: string, baseline: HostBaseline): Promise<void> {
  const file = path.join(state, SERVER_BASELINE_FILE);
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, gzipSync(JSON.stringify(baseline)), { mode: 0o600 });
    await rename(tmp, file);
  } catch (err) {
    throw new QuicksandError('STATE_DIR_UNUSABLE', `cannot write ${file}: ${(err as Error).message}`);
  }
}

/** The version kept in the state folder, or null when there is none. */
export async function readServerBaseline(state: string, agentId: string): Promise<HostBaseline | null> {
  const file = path.join(state, SERVER_BASELINE_FILE);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new QuicksandError('STATE_DIR_UNUSABLE', `cannot read ${file}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    // Held to the longest text JSON.parse takes, as the manifest reader is (agent/manifest/io.ts).
    value = JSON.parse(gunzipSync(bytes, { maxOutputLength: constants.MAX_STRING_LENGTH }).toString('utf8'));
  } catch {
    throw new QuicksandError('MANIFEST_UNREADABLE', `${file} is damaged: delete it and the agent fetches the version again when it connects`);
  }
  return checkBaseline(value, file, agentId);
}

/**
 * Whether a kept version still applies: only while the manifest given to the agent is of the
 * image the version extends. A host rebuilt from a new image starts again from that image's.
 */
export function baselineApplies(baseline: HostBaseline, given: Pick<Manifest, 'image'>): boolean {
  return baseline.image.name === given.image.name && baseline.image.version === given.image.version;
}
