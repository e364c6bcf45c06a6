import { describe, expect, it } from 'vitest';
import { childEnv, runIsolated } from './isolated.js';

describe('a child process of the daemon', () => {
  it("gets glibc's allocator with a fixed threshold for blocks of their own pages", () => {
    expect(childEnv({ PATH: '/bin' })).toEqual({ PATH: '/bin', GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=32768:glibc.malloc.trim_threshold=131072' });
  });

  it("keeps the host's own allocator settings, last so that they win", () => {
    expect(childEnv({ GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536' }).GLIBC_TUNABLES).toBe('glibc.malloc.mmap_threshold=32768:glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=65536');
  });

  it('runs beforeSpawn once, before the child starts', async () => {
    const calls: string[] = [];
    const child = runIsolated(['scan', '--root', '/nonexistent-root', '--manifest', 'x.json'], { beforeSpawn: () => calls.push('before') });
    // Called synchronously: the child is spawned after it, in the same turn.
    expect(calls).toEqual(['before']);
    const r = await child;
    expect(r.stderr).toContain('root /nonexistent-root does not exist');
    expect(calls).toEqual(['before']);
  });
});
