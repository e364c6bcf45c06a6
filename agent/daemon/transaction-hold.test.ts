// The hold of event reports during a package transaction, with its probe passed in: what is
// held, what the full scan afterwards covers, and what passes.
import { describe, expect, it } from 'vitest';
import type { Report } from '../../shared/report.js';
import { holdDuringTransactions } from './monitor.js';
import type { MonitorOptions } from './monitor.js';

const event = (scannedAt: Date): Report => ({ scan: 'event', scannedAt: scannedAt.toISOString(), findings: [{ kind: 'file-added', severity: 'high', path: '/usr/bin/x' }] }) as unknown as Report;
const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function setUp(maxHoldMs = 60_000) {
  let running: string | null = null;
  const passed: Report[] = [];
  const lines: string[] = [];
  let fullScans = 0;
  const onEvent = holdDuringTransactions(
    {
      onReport: (r: Report) => void passed.push(r),
      onError: (err: unknown) => {
        throw err;
      },
      onHold: (l: string) => lines.push(l),
      packageTransactions: { probe: async () => running, pollMs: 10, maxHoldMs },
    } as unknown as MonitorOptions,
    async () => {
      fullScans++;
      return {} as Report;
    },
    () => false,
  );
  return { onEvent, passed, lines, fullScans: () => fullScans, set: (v: string | null) => (running = v) };
}

describe('event reports during a package transaction', () => {
  it('are held, then one full scan reports the batch; a batch that started before the end was seen is left out', async () => {
    const h = setUp();
    await h.onEvent(event(new Date()));
    expect(h.passed).toHaveLength(1); // no transaction: it passes
    h.set('/var/lib/dpkg/lock-frontend held by pid 7');
    const startedDuring = new Date();
    await h.onEvent(event(startedDuring));
    await h.onEvent(event(new Date()));
    expect(h.passed).toHaveLength(1);
    expect(h.lines).toEqual(['package transaction running (/var/lib/dpkg/lock-frontend held by pid 7): event reports held until it ends']);
    await tick(30);
    // A batch that starts just after the last poll that saw the transaction running; it ends.
    const startedLate = new Date(); // after every poll that saw it running, before the end is seen
    h.set(null);
    await tick(60);
    expect(h.fullScans()).toBe(1);
    await h.onEvent(event(startedLate));
    expect(h.passed).toHaveLength(1);
    expect(h.lines[1]).toMatch(/^package transaction ended after [\d.]+ s: one full scan reports it$/);
    // Processed during the transaction, handed over just after it ended: the full scan covers it.
    await h.onEvent(event(startedDuring));
    expect(h.passed).toHaveLength(1);
    await tick(5);
    await h.onEvent(event(new Date()));
    expect(h.passed).toHaveLength(2);
  });

  it('are held at most maxHoldMs, then reported anyway', async () => {
    const h = setUp(50);
    h.set('pip running as pid 9');
    await h.onEvent(event(new Date()));
    await tick(120);
    expect(h.fullScans()).toBe(1);
    expect(h.lines.at(-1)).toMatch(/still running after 0 s \(pip running as pid 9\): reporting anyway/);
    await h.onEvent(event(new Date()));
    expect(h.passed).toHaveLength(1);
  });
});
