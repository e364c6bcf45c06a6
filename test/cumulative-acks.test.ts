// Acks on a real loopback WebSocket: one cumulative ack frame per stored batch of an agent (not
// one per report), and the agent's outbox and transport take such an ack for every report it covers.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../shared/protocol.js';
import type { Report } from '../shared/report.js';
import { waitFor } from './helpers/processes.js';
import { reportFrame } from './helpers/store-backends.js';
import { openStream } from './helpers/stream-client.js';
import { createOutbox } from '../agent/deliver/outbox.js';
import { createTransport } from '../agent/deliver/transport.js';
import { openStateDb } from '../agent/state-db.js';
import { createMetrics } from '../server/metrics.js';
import type { Ingest, IngestResult } from '../server/store/types.js';
import { createBatchWriter } from '../server/stream/batch-writer.js';
import type { BatchWriter } from '../server/stream/batch-writer.js';
import { createRateLimiter } from '../server/stream/rate-limit.js';
import { createStream } from '../server/stream/stream.js';
import type { Stream } from '../server/stream/stream.js';

/** A report body of its own for each n (the outbox chains and hashes them). */
const report = (n: number): Report => reportFrame('a', n, 'event', [], new Date(n * 1000)).report;

/** Every batch waits until the gate opens, so what arrives meanwhile queues for one batch. */
function gatedIngest() {
  let open = false;
  let held: Array<() => void> = [];
  const ingest: Ingest = {
    async ingestBatch(items) {
      if (!open) await new Promise<void>((r) => held.push(r));
      return items.map((i): IngestResult => (i.type === 'report' ? { type: 'report', seq: i.frame.seq, outcome: 'stored', chainBroken: false } : { type: 'other' }));
    },
  };
  return {
    ingest,
    release() {
      open = true;
      for (const r of held) r();
      held = [];
    },
  };
}

let http: Server;
let stream: Stream;
let writer: BatchWriter;
let gate: ReturnType<typeof gatedIngest>;
let url: string;
let dir: string;

beforeEach(async () => {
  gate = gatedIngest();
  writer = createBatchWriter(gate.ingest);
  stream = createStream({
    // The token is the agent id: what is tested here starts after authentication.
    credentials: { authenticateAgent: async (token) => ({ ok: true, agentId: token }) },
    writer,
    metrics: createMetrics(),
    upgradeLimiter: createRateLimiter(100, 100, () => Date.now()),
    now: () => new Date(),
  });
  http = createServer((_req, res) => res.writeHead(404).end());
  http.on('upgrade', (req, socket, head) => stream.handleUpgrade(req, socket, head));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  dir = mkdtempSync(path.join(tmpdir(), 'qs-acks-'));
});
afterEach(async () => {
  stream.close();
  await new Promise((r) => http.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('acks', () => {
  it('sends one ack, for the highest seq, for the reports of an agent stored in one batch', async () => {
    const agentId = 'agent-a';
    const c = await openStream(url, agentId);
    c.ws.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, agentId, host: { hostname: 'h' }, image: null, lastAckedSeq: 0, outboxDepth: 5 }));
    for (let seq = 1; seq <= 5; seq++) c.ws.send(JSON.stringify(reportFrame(agentId, seq, 'event', [], new Date(seq * 1000))));
    // The hello's batch is held; the five reports queue behind it and are written as one batch.
    await waitFor('the hello and five reports to queue', () => writer.depth() === 6, 5000, 5);
    gate.release();
    await c.next((f) => f.type === 'ack' && f.seq === 5);
    await writer.drain();
    await new Promise((r) => setTimeout(r, 50));
    expect(c.frames).toEqual([{ type: 'ack', seq: 5 }]);
    c.ws.close();
  });

  it('the agent drops every report an ack covers from its outbox and reports each one acked', async () => {
    const db = openStateDb(dir);
    const outbox = createOutbox(db);
    for (let n = 1; n <= 4; n++) outbox.enqueue(report(n), 'event', new Date());
    const acked: number[] = [];
    const transport = createTransport({
      config: { server: url, agentId: 'agent-b', token: 'agent-b' },
      outbox,
      host: { hostname: 'h' },
      image: null,
      onAck: (seq) => acked.push(seq),
      backoff: { firstMaxMs: 10, baseMs: 50, capMs: 200 },
    });
    transport.start();
    await waitFor('the hello and four reports to queue', () => writer.depth() === 5, 5000, 5);
    gate.release();
    await waitFor('four reports acked', () => acked.length === 4, 5000, 5);
    expect(acked).toEqual([1, 2, 3, 4]);
    expect(outbox.depth()).toBe(0);
    expect(outbox.lastAckedSeq()).toBe(4);
    // Still sending: a report queued now goes out and is acked on its own.
    outbox.enqueue(report(5), 'event', new Date());
    transport.notify();
    await waitFor('the fifth report acked', () => acked.length === 5, 5000, 5);
    expect(outbox.depth()).toBe(0);
    await transport.stop();
    db.close();
  });
});
