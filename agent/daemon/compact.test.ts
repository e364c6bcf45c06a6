import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

describe('the daemon heap compaction', () => {
  it('gives back old-generation pages that keep a few live objects among garbage', () => {
    // A process of its own, with the daemon's young generation: V8's flags are the whole process's.
    const script = `import(${JSON.stringify(path.resolve('agent/daemon/compact.ts'))}).then((m) => {
      const compact = m.heapCompactor();
      const oldSpace = () => require('node:v8').getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_size / 1048576;
      let all = [];
      for (let i = 0; i < 300000; i++) all.push({ a: 'x' + i, b: [i, i + 1], c: { d: i } });
      // One object in 50 outlives the burst: every page keeps some.
      const kept = all.filter((_, i) => i % 50 === 0);
      all = null;
      const before = oldSpace();
      compact();
      console.log(JSON.stringify({ before, after: oldSpace(), kept: kept.length }));
    })`;
    const run = spawnSync(process.execPath, ['--max-semi-space-size=1', '--import', 'tsx', '-e', script], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    const { before, after } = JSON.parse(run.stdout) as { before: number; after: number };
    // A collection that only sweeps leaves the old generation as large as the burst made it.
    expect(before).toBeGreaterThan(40);
    expect(after).toBeLessThan(before / 3);
  });
});
