// The load generator: one process playing N agents, each with the agent's real transport (hello,
// outbox replay, acks, heartbeats, jittered backoff) over its own loopback WebSocket. Driven by
// the bench orchestrator over IPC; never talks to anything but the servers it is given. Several
// of them share a big fleet (one process holds a few thousand sockets well), each playing the
// hosts from `first` on.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createTransport } from '../agent/deliver/transport.js';
import type { Transport } from '../agent/deliver/transport.js';
import { enrollResponseSchema } from '../shared/protocol.js';
import { eventReport, fullReport } from './fake-reports.js';
import { createMemoryOutbox } from './memory-outbox.js';
import type { MemoryOutbox } from './memory-outbox.js';

export type LoaderCommand =
  | { cmd: 'setup'; urls: string[]; secret: string; agents: number; first: number; heartbeatMs: number }
  | { cmd: 'steady'; rate: number; seconds: number; drainMs: number }
  | { cmd: 'trickle'; rate: number }
  | { cmd: 'mark'; victim: string }
  | { cmd: 'settle'; victim: string; killedAt: number; elsewhere: boolean; timeoutMs: number }
  | { cmd: 'finish'; drainMs: number };

interface Sim {
  hostname: string;
  outbox: MemoryOutbox;
  transport: Transport;
  /** Wall-clock time (Date.now, comparable with the orchestrator's) of the last connection that opened. */
  connectedAt: number;
}

const sims: Sim[] = [];
/** The agents that were on the node the storm kills, marked just before the kill. */
let victims: Sim[] = [];
let latencies: number[] | null = null;
/** When each of `latencies` was acked (ms since the steady phase began): the p99 per window shows a spike apart from a backlog. */
let ackedAt: number[] = [];
let steadyStart = 0;
/** The steady phase's p99 send→ack per window of this length, by ack time. */
const WINDOW_MS = 5000;
let acks = 0;
let refused503 = 0;
let generator: NodeJS.Timeout | null = null;
let eventCounter = 0;

const send = (msg: unknown): void => void process.send!(msg);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function enroll(url: string, secret: string, hostname: string): Promise<{ agentId: string; token: string }> {
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await fetch(`${url}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ secret, hostname }) });
      if (res.status !== 201) throw new Error(`enrol answered ${res.status}`);
      return enrollResponseSchema.parse(await res.json());
    } catch (err) {
      if (attempt >= 5) throw err;
      await sleep(200 * (attempt + 1));
    }
  }
}

function connectedCount(): number {
  return sims.reduce((n, s) => n + (s.transport.connected ? 1 : 0), 0);
}

function pendingCount(): number {
  return sims.reduce((n, s) => n + s.outbox.depth(), 0);
}

/** Every agent knows every node (`servers`) and connects to them in random order, as a fleet without a balancer does. */
async function setup(urls: string[], secret: string, agents: number, first: number, heartbeatMs: number): Promise<void> {
  const t0 = performance.now();
  const ids: { agentId: string; token: string }[] = new Array(agents);
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < agents) {
        const i = next++;
        ids[i] = await enroll(urls[(first + i) % urls.length]!, secret, `sim-${first + i}`);
      }
    }),
  );
  const enrolMs = performance.now() - t0;
  const t1 = performance.now();
  for (let i = 0; i < agents; i++) {
    const hostname = `sim-${first + i}`;
    const outbox = createMemoryOutbox();
    const sim: Sim = { hostname, outbox, transport: null as unknown as Transport, connectedAt: 0 };
    sim.transport = createTransport({
      config: { server: urls[0]!, ...(urls.length > 1 ? { servers: urls } : {}), agentId: ids[i]!.agentId, token: ids[i]!.token },
      outbox,
      host: { hostname, os: 'linux', agentVersion: 'bench' },
      image: { name: 'web', version: '42' },
      heartbeatMs,
      log: (line) => {
        if (line.startsWith('connected to ')) sim.connectedAt = Date.now();
        else if (line.includes('refused the stream: 503')) refused503++;
      },
      onAck: (seq) => {
        acks++;
        const q = outbox.queuedAt.get(seq);
        if (q !== undefined) {
          outbox.queuedAt.delete(seq);
          if (latencies !== null) {
            const now = performance.now();
            latencies.push(now - q);
            ackedAt.push(now - steadyStart);
          }
        }
      },
    });
    // Each agent starts with a full scan of its host.
    outbox.enqueue(fullReport(hostname), 'full', new Date());
    sims.push(sim);
    sim.transport.start();
  }
  while (connectedCount() < agents || pendingCount() > 0) await sleep(200);
  send({ phase: 'connected', enrolMs, connectMs: performance.now() - t1, connected: connectedCount(), refused503, fullReports: agents, byServer: byServer(sims) });
}

/** Connected agents per server URL. */
function byServer(of: readonly Sim[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of of) if (s.transport.connected) out[s.transport.server] = (out[s.transport.server] ?? 0) + 1;
  return out;
}

function generate(ratePerSec: number): void {
  if (generator !== null) clearInterval(generator);
  // Paced by elapsed time, not by timer ticks: a late tick makes up for what it missed.
  const start = performance.now();
  let made = 0;
  generator = setInterval(() => {
    const due = Math.floor(((performance.now() - start) * ratePerSec) / 1000);
    for (; made < due; made++) {
      const sim = sims[Math.floor(Math.random() * sims.length)]!;
      sim.outbox.enqueue(eventReport(sim.hostname, eventCounter++), 'event', new Date());
      sim.transport.notify();
    }
  }, 10);
}

function stopGenerating(): void {
  if (generator !== null) clearInterval(generator);
  generator = null;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function steady(rate: number, seconds: number, drainMs: number): Promise<void> {
  latencies = [];
  ackedAt = [];
  steadyStart = performance.now();
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const cpu0 = process.cpuUsage();
  const acksBefore = acks;
  const t0 = performance.now();
  generate(rate);
  await sleep(seconds * 1000);
  stopGenerating();
  const generatedMs = performance.now() - t0;
  const drainUntil = Date.now() + drainMs;
  while (pendingCount() > 0 && Date.now() < drainUntil) await sleep(50);
  const totalMs = performance.now() - t0;
  const windows: number[][] = [];
  latencies.forEach((ms, i) => (windows[Math.floor(ackedAt[i]! / WINDOW_MS)] ??= []).push(ms));
  const sorted = latencies.sort((a, b) => a - b);
  latencies = null;
  lag.disable();
  const cpu = process.cpuUsage(cpu0);
  send({
    phase: 'steady',
    loaderLagP99: lag.percentile(99) / 1e6,
    loaderCpu: (cpu.user + cpu.system) / 1000 / totalMs,
    reports: acks - acksBefore,
    generatedMs,
    totalMs,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? NaN,
    // Every latency, to the tenth of a millisecond: the orchestrator takes percentiles over all loaders.
    latencies: sorted.map((ms) => Math.round(ms * 10) / 10),
    // null for a window in which nothing was acked (JSON over IPC would turn NaN into null anyway).
    windowP99: Array.from(windows, (w) => (w === undefined ? null : percentile(w.sort((a, b) => a - b), 99))),
    connected: connectedCount(),
    pending: pendingCount(),
  });
}

/**
 * After the kill: when the last of the marked agents (those on the killed node) had a connection
 * open again — on another node when `elsewhere` — and when every agent was connected with its
 * outbox empty. Times are from `killedAt` (the orchestrator's Date.now at the kill).
 */
async function settle(victim: string, killedAt: number, elsewhere: boolean, timeoutMs: number): Promise<void> {
  const refusedBefore = refused503;
  const back = (s: Sim): boolean => s.transport.connected && s.connectedAt >= killedAt && (!elsewhere || s.transport.server !== victim);
  let reconnectMs: number | null = null;
  for (;;) {
    if (reconnectMs === null && victims.every(back)) reconnectMs = victims.reduce((m, s) => Math.max(m, s.connectedAt - killedAt), 0);
    if ((reconnectMs !== null && connectedCount() === sims.length && pendingCount() === 0) || Date.now() - killedAt > timeoutMs) break;
    await sleep(50);
  }
  send({
    phase: 'settled',
    ms: Date.now() - killedAt,
    victims: victims.length,
    victimsBack: victims.filter(back).length,
    reconnectMs,
    connected: connectedCount(),
    pending: pendingCount(),
    refused503: refused503 - refusedBefore,
    byServer: byServer(sims),
  });
}

async function finish(drainMs: number): Promise<void> {
  stopGenerating();
  const until = Date.now() + drainMs;
  while (pendingCount() > 0 && Date.now() < until) await sleep(50);
  const generated = sims.reduce((n, s) => n + s.outbox.lastSeq(), 0);
  send({ phase: 'finished', generated, pending: pendingCount(), perAgent: sims.map((s) => s.outbox.lastSeq()) });
  await Promise.all(sims.map((s) => s.transport.stop()));
  process.exit(0);
}

process.on('message', (msg: LoaderCommand) => {
  const run = async (): Promise<void> => {
    switch (msg.cmd) {
      case 'setup':
        return setup(msg.urls, msg.secret, msg.agents, msg.first, msg.heartbeatMs);
      case 'steady':
        return steady(msg.rate, msg.seconds, msg.drainMs);
      case 'trickle':
        generate(msg.rate);
        send({ phase: 'trickling' });
        return;
      case 'mark':
        victims = sims.filter((s) => s.transport.connected && s.transport.server === msg.victim);
        send({ phase: 'marked', victims: victims.length });
        return;
      case 'settle':
        return settle(msg.victim, msg.killedAt, msg.elsewhere, msg.timeoutMs);
      case 'finish':
        return finish(msg.drainMs);
    }
  };
  run().catch((err: unknown) => {
    send({ phase: 'error', message: String(err) });
    process.exit(1);
  });
});
// Never outlive the orchestrator.
process.on('disconnect', () => process.exit(1));
