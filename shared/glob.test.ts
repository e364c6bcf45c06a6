import { describe, expect, it } from 'vitest';
import { compileGlob } from './glob.js';

// The regular expressions globs used to compile to: the meaning the automaton must keep. Only
// run here on short inputs, where their backtracking is harmless.
function regexOf(glob: string, path: boolean, folder: boolean): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && path && glob[i + 1] === '*') {
      if (glob[i + 2] === '/') {
        out += '(?:.*/)?';
        i += 2;
      } else {
        out += '.*';
        i += 1;
      }
    } else if (c === '*') out += path ? '[^/]*' : '.*';
    else if (c === '?') out += path ? '[^/]' : '.';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}${folder ? '(?:/.*)?' : ''}$`, 's');
}

/** A small deterministic generator, so a failure reproduces. */
function random(seed: number): (n: number) => number {
  let x = seed;
  return (n) => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x % n;
  };
}

describe('compileGlob', () => {
  it('means what the regular expressions meant, on thousands of random globs and names', () => {
    const r = random(7);
    const pick = (alphabet: string[], len: number): string => Array.from({ length: len }, () => alphabet[r(alphabet.length)]).join('');
    for (const [path, folder] of [[true, true], [false, false]] as const) {
      for (let i = 0; i < 3000; i++) {
        const glob = pick(['a', 'b', '/', '*', '**', '?', '/**/', '.'], 1 + r(6));
        const name = pick(['a', 'b', '/', '.', '\n'], r(10));
        const expected = regexOf(glob, path, folder).test(name);
        expect([glob, name, compileGlob(glob, { path, folder })(name)]).toEqual([glob, name, expected]);
      }
    }
  });

  it('matches adversarial globs against long names fast: linear in the name', () => {
    const cases: Array<[string, string, boolean]> = [
      ['*a*a*a*a*a*a*a*a*b', 'a'.repeat(60), false],
      ['*a*a*a*a*a*a*a*a*b', 'a'.repeat(4000), false],
      ['/*a*a*a*a*a*a*a*a*b', `/${'a'.repeat(4000)}`, true],
      ['/**/a**a**a**a**a**a**b', `/${'a/'.repeat(2000)}`, true],
      [`${'*?'.repeat(500)}b`, 'a'.repeat(4000), false],
    ];
    const t0 = performance.now();
    for (const [glob, name, path] of cases) {
      expect(compileGlob(glob, { path, folder: path })(name)).toBe(false);
    }
    // The regular expressions take minutes on the first case alone; a generous bound.
    expect(performance.now() - t0).toBeLessThan(2_000);
  });
});
