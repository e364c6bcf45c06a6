// The batch writer with several batches in flight: an agent is never in two at once and its items
// are written in arrival order, while other agents' batches do run side by side.
import { describe, expect, it } from 'vitest';
import { createBatchWriter } from './batch-writer.js';
import type { Ingest, IngestItem, IngestResult } from '../store/types.js';

const heartbeat = (agentId: string, n: number): IngestItem => ({ type: 'heartbeat', agentId, outboxDepth: n, receivedAt: new Date(0) });

/** An ingest whose batches finish when the test says, recording what was in flight together. */
function slowIngest() {
  const open: Array<{ items: readonly IngestItem[]; finish: () => void; fail: (err: Error) => void }> = [];
  const written: IngestItem[] = [];
  let maxInFlight = 0;
  const overlaps: string[] = [];
  const ingest: Ingest = {
    ingestBatch(items) {
      const agents = new Set(items.map((i) => i.agentId));
      for (const o of open) for (const i of o.items) if (agents.has(i.agentId)) overlaps.push(i.agentId);
      return new Promise<IngestResult[]>((resolve, reject) => {
        const entry = {
          items,
          finish: () => {
            open.splice(open.indexOf(entry), 1);
            written.push(...items);
            resolve(items.map(() => ({ type: 'other' })));
          },
          fail: (err: Error) => {
            open.splice(open.indexOf(entry), 1);
            reject(err);
          },
        };
        open.push(entry);
        maxInFlight = Math.max(maxInFlight, open.length);
      });
    },
  };
  return { ingest, open, written, overlaps, maxInFlight: () => maxInFlight };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A report frame of `agentId` with seq `seq` (only the fields the writer looks at). */
const report = (agentId: string, seq: number): IngestItem => ({ type: 'report', agentId, frame: { seq } as never, receivedAt: new Date(0) });
const seqOf = (i: IngestItem): number => (i as { frame: { seq: number } }).frame.seq;

describe('the batch writer', () => {
  it('keeps an agent in one batch at a time and in order, while other agents are written beside it', async () => {
    const fake = slowIngest();
    const writer = createBatchWriter(fake.ingest, { concurrency: 3, maxBatch: 4 });
    let done = 0;
    const write = (agent: string, n: number): void => void writer.write(heartbeat(agent, n), () => done++);
    // Agent a sends 6 items in a row; b, c, d one each later.
    for (let n = 1; n <= 6; n++) write('a', n);
    await tick();
    write('b', 1);
    write('a', 7);
    await tick();
    write('c', 1);
    write('d', 1);
    await tick();
    // Three batches in flight: a's first four, then b (a waits), then c and d.
    expect(fake.open.map((o) => o.items.map((i) => i.agentId).join(''))).toEqual(['aaaa', 'b', 'cd']);
    while (fake.open.length > 0) {
      fake.open[0]!.finish();
      await tick();
      await tick();
    }
    await writer.drain();
    expect(done).toBe(10);
    expect(fake.overlaps).toEqual([]);
    expect(fake.maxInFlight()).toBe(3);
    const a = fake.written.filter((i) => i.agentId === 'a').map((i) => (i as { outboxDepth: number }).outboxDepth);
    expect(a).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('writes one batch at a time by default (SQLite has one writer)', async () => {
    const fake = slowIngest();
    const writer = createBatchWriter(fake.ingest);
    writer.write(heartbeat('a', 1), () => {});
    await tick();
    writer.write(heartbeat('b', 1), () => {});
    await tick();
    expect(fake.open).toHaveLength(1);
    fake.open[0]!.finish();
    await tick();
    await tick();
    expect(fake.open.map((o) => o.items.map((i) => i.agentId).join(''))).toEqual(['b']);
    fake.open[0]!.finish();
    await writer.drain();
  });

  it("fails an agent's reports queued behind a batch that failed, so none commits ahead of the failed one", async () => {
    const fake = slowIngest();
    const writer = createBatchWriter(fake.ingest, { concurrency: 2 });
    const outcome = new Map<string, string>();
    const write = (agent: string, seq: number): void =>
      void writer.write(report(agent, seq), (r) => outcome.set(`${agent}${seq}`, r instanceof Error ? 'failed' : 'written'));
    write('a', 1);
    await tick();
    // a2 waits behind a1's batch; b1 goes out beside it.
    write('a', 2);
    write('b', 1);
    await tick();
    expect(fake.open.map((o) => o.items.map((i) => `${i.agentId}${seqOf(i)}`).join(''))).toEqual(['a1', 'b1']);
    // a1's transaction rolls back (a deadlock, a lost connection): a2 must not be written before a1 is.
    fake.open[0]!.fail(new Error('deadlock detected'));
    await tick();
    await tick();
    write('b', 2);
    while (fake.open.length > 0) {
      fake.open[0]!.finish();
      await tick();
      await tick();
    }
    await writer.drain();
    expect(fake.written.filter((i) => i.agentId === 'a')).toEqual([]);
    expect(Object.fromEntries(outcome)).toEqual({ a1: 'failed', a2: 'failed', b1: 'written', b2: 'written' });
    // The agent sends again from a1: both go through in order.
    write('a', 1);
    write('a', 2);
    await tick();
    fake.open[0]!.finish();
    await writer.drain();
    expect(fake.written.filter((i) => i.agentId === 'a').map(seqOf)).toEqual([1, 2]);
  });

  it("says of each batch its items, its oldest item's wait and its write, failed ones too", async () => {
    const fake = slowIngest();
    const batches: Array<{ items: number; waitedMs: number; writeMs: number }> = [];
    const writer = createBatchWriter(fake.ingest, { onBatch: (items, waitedMs, writeMs) => batches.push({ items, waitedMs, writeMs }) });
    writer.write(heartbeat('a', 1), () => {});
    await tick();
    // b and c arrive while a's batch is written: they wait for it.
    writer.write(heartbeat('b', 1), () => {});
    writer.write(heartbeat('c', 1), () => {});
    await new Promise((r) => setTimeout(r, 40));
    fake.open[0]!.finish();
    await tick();
    await tick();
    expect(batches).toHaveLength(1);
    expect(batches[0]!.items).toBe(1);
    expect(batches[0]!.writeMs).toBeGreaterThanOrEqual(35);
    expect(batches[0]!.waitedMs).toBeLessThan(35);
    fake.open[0]!.fail(new Error('connection lost'));
    await writer.drain();
    expect(batches).toHaveLength(2);
    expect(batches[1]!.items).toBe(2);
    expect(batches[1]!.waitedMs).toBeGreaterThanOrEqual(35);
    expect(batches[1]!.writeMs).toBeLessThan(35);
  });
});
