// The batch writer with several batches in flight: an agent is never in two at once and its items
// are written in arrival order, while other agents' batches do run side by side.
import { describe, expect, it } from 'vitest';
import { createBatchWriter } from './batch-writer.js';
import type { Ingest, IngestItem, IngestResult } from '../store/types.js';

const heartbeat = (agentId: string, n: number): IngestItem => ({ type: 'heartbeat', agentId, outboxDepth: n, receivedAt: new Date(0) });

/** An ingest whose batches finish when the test says, recording what was in flight together. */
function slowIngest() {
  const open: Array<{ items: readonly IngestItem[]; finish: () => void }> = [];
  const written: IngestItem[] = [];
  let maxInFlight = 0;
  const overlaps: string[] = [];
  const ingest: Ingest = {
    ingestBatch(items) {
      const agents = new Set(items.map((i) => i.agentId));
      for (const o of open) for (const i of o.items) if (agents.has(i.agentId)) overlaps.push(i.agentId);
      return new Promise<IngestResult[]>((resolve) => {
        const entry = {
          items,
          finish: () => {
            open.splice(open.indexOf(entry), 1);
            written.push(...items);
            resolve(items.map(() => ({ type: 'other' })));
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
});
