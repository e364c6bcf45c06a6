// Progress where a person waits, also when stderr is not a terminal (a log, a pipe, `npm start`):
// one line every few seconds, with the total and an estimate once the total can be known (here:
// the count of the last walk of this root). --max-rate 800 stretches the walk (6,000 paths) of a real Debian root
// to several seconds, as a large host's would be.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureMinbase } from './helpers/debian-root.js';
import { runCliAsync } from './helpers/processes.js';

let dir: string;
let root: string;

beforeAll(() => {
  root = ensureMinbase();
  dir = mkdtempSync(path.join(tmpdir(), 'quicksand-progress-'));
}, 300_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('progress on a stderr that is not a terminal', () => {
  const state = (): string => path.join(dir, 'state');
  const manifest = (): string => path.join(dir, 'm.json.gz');

  it('manifest prints a line every few seconds: paths so far (no total is known on a first walk of a folder)', async () => {
    const r = await runCliAsync('agent', ['manifest', '--root', root, '--out', manifest(), '--state', state(), '--max-rate', '800']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('manifest: '));
    expect(lines.length, r.stderr).toBeGreaterThanOrEqual(1);
    for (const l of lines) expect(l).toMatch(/^manifest: [\d,]+ paths, [\d,]+ MiB hashed, \d+ s$/);
    // Lines, not a live line: no carriage returns or escapes in a log.
    expect(r.stderr).not.toMatch(/[\r\x1b]/);
  }, 60_000);

  it('scan prints the total and an estimate, known from the last walk of this root', async () => {
    const r = await runCliAsync('agent', ['scan', '--root', root, '--manifest', manifest(), '--state', state(), '--max-rate', '800']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('scan: '));
    expect(lines.length, r.stderr).toBeGreaterThanOrEqual(1);
    for (const l of lines) expect(l).toMatch(/^scan: [\d,]+ of ~[\d,]+ paths \(\d+%\), [\d,]+ MiB hashed, \d+ s; (about \d+ s left|almost done)$/);
    expect(r.stderr).not.toMatch(/[\r\x1b]/);
  }, 60_000);

  it('--quiet prints none', async () => {
    const r = await runCliAsync('agent', ['scan', '--root', root, '--manifest', manifest(), '--state', state(), '--max-rate', '800', '--quiet']);
    expect(r.stderr).toBe('');
  }, 60_000);
});
