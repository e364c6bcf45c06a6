// The first walk's estimate of how many paths it will see (the progress line's "of ~N"): from
// the inodes of a filesystem only when the tracked paths are filesystems of their own. On a
// real host /usr shares / with /var, /home and the rest, and the inode count of / was ~15x the
// paths a walk of the tracked folders sees (1.8M against 120k).
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectedPaths } from '../agent/commands/progress.js';
import { DEFAULT_TRACKED } from '../shared/policy.js';

describe('expectedPaths', () => {
  it('takes the last walk of the root when there is one', async () => {
    expect(await expectedPaths('/', 123_456, DEFAULT_TRACKED)).toBe(123_456);
  });

  it('gives no estimate for / when a tracked folder shares its filesystem with untracked ones', async () => {
    // This machine's /usr lives on the filesystem of / (checked, so the test says what it tests).
    expect(statSync('/usr').dev).toBe(statSync('/').dev);
    const fs = await statfs('/');
    expect(fs.files - fs.ffree).toBeGreaterThan(0); // the count the old estimate would have shown
    expect(await expectedPaths('/', undefined, DEFAULT_TRACKED)).toBeUndefined();
  });

  it('gives no estimate for a folder inside a larger filesystem', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'quicksand-estimate-'));
    try {
      expect(await expectedPaths(dir, undefined, DEFAULT_TRACKED)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('counts the inodes of a tracked path that is a filesystem of its own', async () => {
    // /dev is a mount of its own (devtmpfs or tmpfs) wherever Linux runs tests.
    const dev = statSync('/dev');
    if (dev.dev === statSync('/').dev) return;
    const fs = await statfs('/dev');
    const n = await expectedPaths('/', undefined, ['/dev']);
    expect(n).toBeGreaterThan(0);
    expect(Math.abs(n! - (fs.files - fs.ffree))).toBeLessThan(50);
  });
});
