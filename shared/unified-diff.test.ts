import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { unifiedDiff } from './unified-diff.js';

const dir = mkdtempSync(path.join(tmpdir(), 'unified-diff-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Applies `diff` to `before` with GNU patch (the real consumer of the format) and returns the result. */
function applyWithPatch(before: string, diff: string): string {
  const file = path.join(dir, 'f');
  writeFileSync(file, before);
  execFileSync('patch', ['--quiet', '--force', '--no-backup-if-mismatch', file], { input: diff, stdio: ['pipe', 'ignore', 'pipe'] });
  return readFileSync(file, 'utf8');
}

const lines = (n: number, f: (i: number) => string = (i) => `line ${i}`): string => Array.from({ length: n }, (_, i) => `${f(i + 1)}\n`).join('');

describe('unifiedDiff', () => {
  it('writes the headers and one hunk with three lines of context, as diff -u does', () => {
    const before = lines(10);
    const after = before.replace('line 5\n', 'line five\n');
    const d = unifiedDiff(before, after, '/etc/demo.conf');
    expect(d.text).toBe(['--- a/etc/demo.conf', '+++ b/etc/demo.conf', '@@ -2,7 +2,7 @@', ' line 2', ' line 3', ' line 4', '-line 5', '+line five', ' line 6', ' line 7', ' line 8', ''].join('\n'));
    expect(d).toMatchObject({ hunks: { shown: 1, total: 1 }, truncated: false, approximate: false });
    // GNU diff agrees line for line after the headers (which name temporary files there).
    writeFileSync(path.join(dir, 'a'), before);
    writeFileSync(path.join(dir, 'b'), after);
    let gnu = '';
    try {
      execFileSync('diff', ['-u', path.join(dir, 'a'), path.join(dir, 'b')], { encoding: 'utf8' });
    } catch (err) {
      gnu = (err as { stdout: string }).stdout;
    }
    expect(d.text.split('\n').slice(2)).toEqual(gnu.split('\n').slice(2));
  });

  it('keeps changes far apart in separate hunks and merges close ones', () => {
    const before = lines(40);
    const far = before.replace('line 3\n', 'three\n').replace('line 30\n', 'thirty\n');
    expect(unifiedDiff(before, far, '/x').hunks.total).toBe(2);
    const close = before.replace('line 3\n', 'three\n').replace('line 9\n', 'nine\n');
    expect(unifiedDiff(before, close, '/x').hunks.total).toBe(1);
  });

  it('shows an added file against /dev/null and a removed one the other way', () => {
    expect(unifiedDiff(null, 'a\nb\n', '/etc/new').text).toBe('--- /dev/null\n+++ b/etc/new\n@@ -0,0 +1,2 @@\n+a\n+b\n');
    expect(unifiedDiff('a\n', null, '/etc/old').text).toBe('--- a/etc/old\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n');
  });

  it('marks a last line without a newline, and a newline added at the end is a change', () => {
    const d = unifiedDiff('a\nb', 'a\nb\n', '/f');
    expect(d.text).toBe('--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n');
    expect(applyWithPatch('a\nb', d.text)).toBe('a\nb\n');
  });

  it('gives only the headers for equal texts', () => {
    expect(unifiedDiff('same\n', 'same\n', '/f')).toMatchObject({ text: '--- a/f\n+++ b/f\n', hunks: { shown: 0, total: 0 } });
  });

  it('is applied by GNU patch to give the new text, for many random edits', () => {
    // A small fixed generator: the same cases on every run.
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 40; round++) {
      const base = Array.from({ length: 5 + rand(60) }, () => `v${rand(8)}`);
      const edited = [...base];
      for (let e = rand(8); e >= 0; e--) {
        const at = rand(edited.length + 1);
        const what = rand(3);
        if (what === 0) edited.splice(at, 1);
        else if (what === 1) edited.splice(at, 0, `new${rand(5)}`);
        else edited[at] = `changed${rand(5)}`;
      }
      const before = `${base.join('\n')}\n`;
      const after = `${edited.filter((l) => l !== undefined).join('\n')}${rand(4) === 0 ? '' : '\n'}`;
      const d = unifiedDiff(before, after, '/f');
      if (before === after) continue;
      expect(applyWithPatch(before, d.text), `round ${round}:\n${d.text}`).toBe(after);
    }
  });

  it('past maxEdits shows the changed middle as one replacement, still a correct diff', () => {
    const before = lines(300, (i) => `old ${i}`);
    const after = lines(300, (i) => `new ${i}`);
    const d = unifiedDiff(`keep\n${before}keep\n`, `keep\n${after}keep\n`, '/f', { maxEdits: 50 });
    expect(d.approximate).toBe(true);
    expect(applyWithPatch(`keep\n${before}keep\n`, d.text)).toBe(`keep\n${after}keep\n`);
    expect(unifiedDiff(`keep\n${before}keep\n`, `keep\n${after}keep\n`, '/f', { maxEdits: 1000 }).approximate).toBe(false);
  });

  it('cuts at maxChars between lines, and the cut hunk counts the lines it shows', () => {
    const before = lines(600);
    const after = lines(600, (i) => (i % 2 === 0 ? `even ${i}` : `line ${i}`));
    const d = unifiedDiff(before, after, '/f', { maxChars: 4096 });
    expect(d).toMatchObject({ truncated: true, approximate: false });
    expect(d.text.length).toBeLessThanOrEqual(4096);
    expect(d.hunks.shown).toBeLessThan(d.hunks.total + 1);
    // What is shown is a well-formed diff: patch applies it (to the lines it covers).
    const applied = applyWithPatch(before, d.text);
    expect(applied.startsWith('line 1\neven 2\n')).toBe(true);
    expect(applied.endsWith('line 599\nline 600\n')).toBe(true);
  });

  it('quotes a path with control characters in the headers, as git does', () => {
    expect(unifiedDiff('a\n', 'b\n', '/etc/evil\nname').text.split('\n').slice(0, 2)).toEqual(['--- "a/etc/evil\\nname"', '+++ "b/etc/evil\\nname"']);
  });
});

describe('unifiedDiff on hostile input', () => {
  it('stays within maxWork however the lines are laid out, and is still a correct diff', () => {
    // Two long texts that share many lines in shifted order: the search's worst case.
    const before = lines(20000, (i) => `${i % 7}`);
    const after = lines(20000, (i) => `${i % 11}`);
    const d = unifiedDiff(before, after, '/f', { maxWork: 100_000, maxChars: 10_000_000 });
    expect(d.approximate).toBe(true);
    expect(applyWithPatch(before, d.text)).toBe(after);
  });
});
