import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { REPORT_SCHEMA, summarize } from '../../shared/report.js';
import type { Report } from '../../shared/report.js';
import type { Manifest } from '../../shared/manifest.js';
import { heapCompactor } from './compact.js';
import { startDaemon } from './daemon.js';
import type { MonitorOptions } from './monitor.js';
import { createOutbox } from '../deliver/outbox.js';
import { openRoot } from '../root.js';
import { openStateDb } from '../state-db.js';
import type { Transport } from '../deliver/transport.js';

const report = (scan: 'full' | 'event'): Report => ({
  schema: REPORT_SCHEMA,
  scan,
  image: { name: 'web', version: '1' },
  host: { hostname: 'h', root: '/' },
  scannedAt: new Date(0).toISOString(),
  summary: summarize([]),
  stats: { files: 0, packages: 0, bytesHashed: 0, durationMs: 0 },
  findings: [],
  warnings: [],
});

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'quicksand-daemon-'));
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
  rmSync(dir, { recursive: true, force: true });
});

describe('the daemon going quiet', () => {
  it('gives its memory back once, a quiet period after the last report of a burst', async () => {
    const db = openStateDb(dir);
    let emit!: (r: Report) => void;
    const transport: Transport = { start: () => {}, stop: async () => {}, notify: () => {} } as unknown as Transport;
    const whenQuiet = vi.fn();
    const daemon = startDaemon({
      root: await openRoot(dir),
      manifest: {} as Manifest,
      outbox: createOutbox(db),
      transport,
      hostId: 'h',
      scan: async () => report('full'),
      log: () => {},
      whenQuiet,
      quietMs: 5_000,
      startMonitor: (opts: MonitorOptions) => {
        emit = (r) => void opts.onReport(r);
        return { ready: Promise.resolve(), schedule: '0 * * * *', watchState: () => ({ state: 'ok' }), fullScan: async () => report('full'), exclusive: (fn) => fn(), close: async () => {} };
      },
    });
    emit(report('full'));
    await vi.advanceTimersByTimeAsync(4_000);
    emit(report('event')); // a burst goes on: the quiet period starts again
    await vi.advanceTimersByTimeAsync(4_000);
    expect(whenQuiet).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1_500);
    expect(whenQuiet).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(whenQuiet).toHaveBeenCalledTimes(1);
    await daemon.stop();
    db.close();
  });

  it('has a real collection to run when quiet', () => {
    const gc = heapCompactor();
    expect(typeof gc).toBe('function');
    expect(() => gc()).not.toThrow();
  });
});
