import { setTimeout as sleep } from 'node:timers/promises';

/** How much a scan may spend per second; absent = as fast as the host allows. */
export interface BudgetLimits {
  filesPerSec?: number;
  bytesPerSec?: number;
}

/**
 * Paces a scan to a files/s and bytes/s budget: callers say what they are about to spend and
 * wait until the running totals fit the rates since the start. Waiting (not skipping) means a
 * throttled scan still sees every file, it just takes longer.
 */
export class Budget {
  private files = 0;
  private bytes = 0;
  private readonly t0: number;

  constructor(
    private readonly limits: BudgetLimits,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.t0 = now();
  }

  get limited(): boolean {
    return (this.limits.filesPerSec ?? 0) > 0 || (this.limits.bytesPerSec ?? 0) > 0;
  }

  /** Milliseconds to wait before spending `files` and `bytes` more. Pure given the clock. */
  delayFor(files: number, bytes: number): number {
    const f = this.limits.filesPerSec ?? 0;
    const b = this.limits.bytesPerSec ?? 0;
    const due = Math.max(f > 0 ? ((this.files + files) / f) * 1000 : 0, b > 0 ? ((this.bytes + bytes) / b) * 1000 : 0);
    return Math.max(0, due - (this.now() - this.t0));
  }

  async spend(files: number, bytes: number): Promise<void> {
    if (!this.limited) return;
    const wait = this.delayFor(files, bytes);
    this.files += files;
    this.bytes += bytes;
    if (wait > 1) await sleep(wait);
  }
}
