import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REPORT_SCHEMA, summarize } from '../../shared/report.js';
import type { Report } from '../../shared/report.js';
import { reconnectDelay } from './backoff.js';
import { chainHash, createOutbox } from './outbox.js';
import { openStateDb } from '../state-db.js';

const report = (n: number): Report => ({
  schema: REPORT_SCHEMA,
  image: { name: 'web', version: '1' },
  host: { hostname: 'h', root: '/' },
  scannedAt: new Date(n * 1000).toISOString(),
  summary: summarize([]),
  stats: { files: n, packages: 0, bytesHashed: 0, durationMs: 0 },
  findings: [],
  warnings: [],
});

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'quicksand-outbox-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('outbox', () => {
  it('numbers reports in order and chains each to the hash of the one before', () => {
    const db = openStateDb(dir);
    const outbox = createOutbox(db);
    const a = outbox.enqueue(report(1), 'full', new Date());
    const b = outbox.enqueue(report(2), 'event', new Date());
    expect([a.seq, b.seq]).toEqual([1, 2]);
    expect(a.prevHash).toBeNull();
    expect(b.prevHash).toBe(a.hash);
    expect(b.hash).toBe(chainHash(a.hash, JSON.stringify(report(2))));
    db.close();
  });

  it('keeps reports across a reopen until they are acked, and continues the numbering', () => {
    let db = openStateDb(dir);
    let outbox = createOutbox(db);
    outbox.enqueue(report(1), 'full', new Date());
    const second = outbox.enqueue(report(2), 'full', new Date());
    outbox.ack(1);
    db.close();

    db = openStateDb(dir);
    outbox = createOutbox(db);
    expect(outbox.pending(0, 10).map((e) => e.seq)).toEqual([2]);
    expect(outbox.lastAckedSeq()).toBe(1);
    const third = outbox.enqueue(report(3), 'full', new Date());
    expect(third).toMatchObject({ seq: 3, prevHash: second.hash });
    expect(outbox.pending(2, 10).map((e) => e.seq)).toEqual([3]);
    db.close();
  });
});

describe('reconnect backoff', () => {
  const opts = { firstMaxMs: 5_000, baseMs: 2_000, capMs: 300_000 };
  it('spreads the first retry over a random delay, then grows exponentially up to the cap', () => {
    expect(reconnectDelay(0, opts, () => 0)).toBe(0);
    expect(reconnectDelay(0, opts, () => 0.999)).toBeCloseTo(4995, -1);
    expect(reconnectDelay(1, opts, () => 0)).toBe(1_000);
    expect(reconnectDelay(3, opts, () => 1)).toBe(8_000);
    expect(reconnectDelay(40, opts, () => 1)).toBe(300_000);
    expect(reconnectDelay(40, opts, () => 0)).toBe(150_000);
  });
  it('waits at least what the server asked for in Retry-After', () => {
    expect(reconnectDelay(1, opts, () => 0, 30_000)).toBeGreaterThanOrEqual(30_000);
  });
});
