// A bounded fuzz pass over the frame and manifest parsers (issue 11): structured random frames,
// mutated from real ones, sent to a real server for a few seconds; then the server must still
// store and ack a good agent's report. The parsers themselves must never throw anything but a
// QuicksandError. Deterministic seeds, so a failure reproduces.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isQuicksandError } from '../shared/errors.js';
import { parseManifest } from '../shared/manifest.js';
import { PROTOCOL_VERSION, parseAgentFrame } from '../shared/protocol.js';
import { REPORT_SCHEMA, summarize } from '../shared/report.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { connectStream, openStream } from './helpers/stream-client.js';

const FUZZ_MS = 6000;
let dir: string;
let server: RunningServer;
let secret: string;
let admin: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'quicksand-fuzz-'));
  server = await startServer({ db: path.join(dir, 'server.db'), port: 0, host: '127.0.0.1', schedules: false, maxFrameBytes: 256 * 1024, enrollBurst: 1000 });
  secret = await server.store.createEnrollSecret(new Date());
  admin = await server.store.createApiToken('admin', new Date());
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function random(seed: number): (n: number) => number {
  let x = seed >>> 0;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

const h = (n: number): string => n.toString(16).padStart(64, '0');

function seeds(agentId: string): unknown[] {
  const findings = [{ kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: 'nc', after: '1.0', changes: [{ kind: 'file-added', severity: 'high', path: '/usr/bin/nc' }] }];
  return [
    { type: 'hello', protocol: PROTOCOL_VERSION, agentId, host: { hostname: 'fuzz' }, image: { name: 'web', version: '1' }, lastAckedSeq: 0, outboxDepth: 0, labels: { env: 'prod' } },
    { type: 'heartbeat', outboxDepth: 3 },
    {
      type: 'report', agentId, seq: 1, prevHash: null, hash: h(1), kind: 'event',
      report: { schema: REPORT_SCHEMA, scan: 'event', scope: { paths: ['/usr/bin/nc'], subtrees: [], packages: true }, image: { name: 'web', version: '1' }, host: { hostname: 'fuzz', root: '/' }, scannedAt: new Date().toISOString(), summary: summarize(findings as never), stats: { files: 1, packages: 1, bytesHashed: 0, durationMs: 1 }, findings, changeSets: [{ id: 'cs', tool: 'apt', packages: 1 }], warnings: [{ code: 'W', message: 'm' }] },
    },
  ];
}

/** One structured mutation: a field removed, retyped, grown, nested or replaced. */
function mutate(value: unknown, r: (n: number) => number, depth = 0): unknown {
  const weird = (): unknown => [null, -1, 1e308, 'x'.repeat(r(5000)), [], {}, true, '\u0000', '../../etc', { $: 1 }, '🦀'.repeat(50), Number.MAX_SAFE_INTEGER + 2][r(12)];
  if (typeof value !== 'object' || value === null) return r(3) === 0 ? weird() : value;
  if (Array.isArray(value)) {
    const out = value.map((v) => (r(3) === 0 ? mutate(v, r, depth + 1) : v));
    if (r(4) === 0) out.push(...Array.from({ length: r(200) }, () => out[0] ?? weird()));
    if (r(6) === 0) out.push(deep(r(2000)));
    return out;
  }
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  const keys = Object.keys(out);
  const k = keys[r(keys.length)] ?? 'k';
  switch (r(5)) {
    case 0:
      delete out[k];
      break;
    case 1:
      out[k] = weird();
      break;
    case 2:
      out[`extra${r(10)}`] = weird();
      break;
    case 3:
      out[k] = mutate(out[k], r, depth + 1);
      break;
    default:
      out[k] = deep(50 + r(3000));
  }
  return out;
}

/** A value nested `n` levels, built as text would be: no recursion. */
function deep(n: number): unknown {
  let v: unknown = { kind: 'file-added', severity: 'high', path: '/x' };
  for (let i = 0; i < n; i++) v = { kind: 'package-added', severity: 'high', changes: [v] };
  return v;
}

/** JSON text of any depth without JSON.stringify's recursion: deep parts become text directly. */
function text(value: unknown, r: (n: number) => number): string {
  if (r(20) === 0) return '{"type":"report"'.repeat(1 + r(5)); // truncated
  if (r(25) === 0) return `${'['.repeat(10_000 + r(50_000))}${']'.repeat(r(2) === 0 ? 10_000 : 0)}`;
  try {
    return JSON.stringify(value);
  } catch {
    return '{"type":"heartbeat","outboxDepth":0}';
  }
}

/** POSTs a manifest as `text` makes it (any depth, sometimes truncated). */
async function post(r: (n: number) => number, value: unknown): Promise<{ status: number }> {
  const res = await fetch(`${server.url}/api/v1/images`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: text(value, r) });
  await res.arrayBuffer();
  return { status: res.status };
}

describe('fuzz', () => {
  it('never throws anything but a QuicksandError from the frame and manifest parsers', () => {
    const r = random(11);
    const manifest = { schema: 'quicksand.manifest/v1', image: { name: 'x', version: '1', createdAt: new Date().toISOString(), source: 'root' }, packages: [{ ecosystem: 'dpkg', name: 'a', version: '1' }], files: [{ path: '/etc/a', type: 'file', mode: '0644', uid: 0, gid: 0 }] };
    const t0 = Date.now();
    let n = 0;
    while (Date.now() - t0 < 1500) {
      const seed = seeds('0123456789abcdef')[r(3)];
      const t = text(mutate(seed, r), r);
      const parsed = parseAgentFrame(t);
      expect(typeof parsed.ok).toBe('boolean');
      try {
        parseManifest(mutate(manifest, r), 'fuzz');
      } catch (err) {
        if (!isQuicksandError(err)) throw err;
      }
      n++;
    }
    expect(n).toBeGreaterThan(20);
  });

  it('keeps serving after a few seconds of structured random frames and manifests from many agents', async () => {
    const r = random(42);
    const t0 = Date.now();
    let frames = 0;
    let connections = 0;
    const workers = Array.from({ length: 4 }, async (_, w) => {
      while (Date.now() - t0 < FUZZ_MS) {
        const a = (await server.store.enrollAgent(secret, `fuzz-${w}`, new Date()))!;
        const attempt = await connectStream(server.url, a.token);
        if (!('client' in attempt)) continue;
        connections++;
        const c = attempt.client;
        c.ws.on('error', () => {});
        for (let i = 0; i < 40 && c.ws.readyState === c.ws.OPEN; i++) {
          const seed = seeds(a.agentId)[r(3)];
          c.ws.send(r(30) === 0 ? Buffer.from([0xff, 0xfe, r(256)]) : text(mutate(seed, r), r));
          frames++;
          if (i % 10 === 0) await new Promise((res) => setImmediate(res));
        }
        c.ws.terminate();
        if (r(3) === 0) {
          const res = await post(r, mutate({ schema: 'quicksand.manifest/v1', image: { name: `f${w}`, version: '1', createdAt: new Date().toISOString(), source: 'root' }, packages: [], files: [{ path: '/a', type: 'file', mode: '0644', uid: 0, gid: 0 }] }, r));
          expect([200, 201, 400, 413, 503]).toContain(res.status);
        }
      }
    });
    await Promise.all(workers);
    expect(frames).toBeGreaterThan(100);
    expect(connections).toBeGreaterThan(5);
    // Alive: a good agent is still served.
    const good = (await server.store.enrollAgent(secret, 'after-fuzz', new Date()))!;
    const c = await openStream(server.url, good.token);
    c.ws.send(JSON.stringify(seeds(good.agentId)[0]));
    c.ws.send(JSON.stringify(seeds(good.agentId)[2]));
    expect(await c.next((f) => f.type === 'ack' && f.seq === 1, 10_000)).toBeTruthy();
    c.ws.close();
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  }, 30_000);
});
