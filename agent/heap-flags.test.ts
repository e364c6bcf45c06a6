import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

describe('the young generation of a walking command', () => {
  it('grows to the semi-space size asked for and is held there', () => {
    // A process of its own: V8's flags are the whole process's.
    const script = `import(${JSON.stringify(path.resolve('agent/heap-flags.ts'))}).then(async (m) => {
      m.growYoungGenerationTo(4);
      const kept = [];
      for (let round = 0; round < 300; round++) {
        for (let i = 0; i < 20000; i++) { const o = { i, s: 'x' + i }; if (i % 50 === 0) kept.push(o); }
        await new Promise((r) => setImmediate(r));
      }
      const newSpace = require('node:v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
      console.log(newSpace.space_size / 1024 / 1024);
    })`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    // Two semi-spaces of 4 MB; left to V8, they grow to 16 MB each.
    expect(Number(run.stdout)).toBe(8);
  });
});
