// Glob matching in time linear in the name for a given pattern: the pattern becomes a small
// automaton and every name is read once, keeping the set of places in the pattern it could be at
// (at most twice the pattern's length). A backtracking regular expression takes exponential time
// on `*a*a*a*a*b` against `aaaa…`, and globs come from users (rules) and run on every finding. Pure.

type Token = { t: 'lit'; c: number } | { t: 'one' } | { t: 'star' } | { t: 'all' } | { t: 'dirs' };

export interface GlobOptions {
  /** Path globs: `*` and `?` stay inside a segment, `**` crosses segments, `/**\/` also matches `/`. */
  path: boolean;
  /** Also match everything below a match (`/var/log` matches `/var/log/syslog`). */
  folder: boolean;
}

const SLASH = 47;
const STAR = 42;
const QUESTION = 63;

function tokenize(glob: string, path: boolean): Token[] {
  const out: Token[] = [];
  for (let i = 0; i < glob.length; i++) {
    const c = glob.charCodeAt(i);
    if (c === STAR) {
      if (path && glob.charCodeAt(i + 1) === STAR) {
        if (glob.charCodeAt(i + 2) === SLASH) {
          out.push({ t: 'dirs' });
          i += 2;
        } else {
          out.push({ t: 'all' });
          i += 1;
        }
      } else out.push({ t: path ? 'star' : 'all' });
    } else if (c === QUESTION) out.push({ t: 'one' });
    else out.push({ t: 'lit', c });
  }
  return out;
}

/** A matcher for one glob. */
export function compileGlob(glob: string, opts: GlobOptions): (name: string) => boolean {
  const tokens = tokenize(glob, opts.path);
  const m = tokens.length;
  if (tokens.every((t) => t.t === 'lit')) {
    return opts.folder ? (s) => s === glob || (s.startsWith(glob) && s.charCodeAt(glob.length) === SLASH) : (s) => s === glob;
  }
  // States: 0..m are positions in the pattern; m + 1 + i is "inside" the `**/` at token i.
  const size = 2 * m + 2;
  let current = new Int32Array(size);
  let next = new Int32Array(size);
  const seen = new Uint32Array(size);
  let generation = 0;
  let count = 0;

  // Adds a state and everything reachable from it without reading a character.
  const add = (list: Int32Array, state: number): void => {
    if (seen[state] === generation) return;
    seen[state] = generation;
    list[count++] = state;
    if (state < m) {
      const t = tokens[state]!.t;
      if (t === 'star' || t === 'all') add(list, state + 1);
      else if (t === 'dirs') {
        add(list, state + 1);
        add(list, m + 1 + state);
      }
    }
  };
  const consumesSegmentChar = (c: number): boolean => !opts.path || c !== SLASH;
  // A name that matches holds each run of literal characters of the glob as it is: most names
  // fail that test (a native substring search) and never enter the automaton.
  const needle = longestLiteral(tokens);

  return (s) => {
    if (needle.length > 1 && !s.includes(needle)) return false;
    generation++;
    count = 0;
    add(current, 0);
    let active = count;
    for (let k = 0; k < s.length; k++) {
      const c = s.charCodeAt(k);
      generation++;
      count = 0;
      for (let j = 0; j < active; j++) {
        const state = current[j]!;
        if (state === m) {
          if (opts.folder && c === SLASH) return true;
          continue;
        }
        if (state > m) {
          const i = state - m - 1;
          add(next, state);
          if (c === SLASH) add(next, i + 1);
          continue;
        }
        const tok = tokens[state]!;
        switch (tok.t) {
          case 'lit':
            if (c === tok.c) add(next, state + 1);
            break;
          case 'one':
            if (consumesSegmentChar(c)) add(next, state + 1);
            break;
          case 'star':
            if (consumesSegmentChar(c)) add(next, state);
            break;
          case 'all':
            add(next, state);
            break;
          case 'dirs':
            break;
        }
      }
      if (count === 0) return false;
      active = count;
      [current, next] = [next, current];
    }
    for (let j = 0; j < active; j++) if (current[j] === m) return true;
    return false;
  };
}

/**
 * The name a path must end in (after a `/`) to match a path glob whole, when the glob's last
 * segment is literal: `/var/log` gives `log`, `/**\/__pycache__` gives `__pycache__`, `/etc/cron*`
 * and `/x/a**\/b` (which matches `/x/ab`) give undefined. A walk looks such globs up by name.
 */
export function literalLastSegment(glob: string): string | undefined {
  const tokens = tokenize(glob, true);
  let i = tokens.length;
  while (i > 0) {
    const t = tokens[i - 1]!;
    if (t.t !== 'lit' || t.c === SLASH) break;
    i--;
  }
  const name = glob.slice(glob.length - (tokens.length - i));
  const sep = tokens[i - 1];
  if (sep?.t === 'lit') return name;
  // `**/` matches nothing or a run ending in `/`: the name follows a `/` only if one comes before it.
  const before = tokens[i - 2];
  if (sep?.t === 'dirs' && before?.t === 'lit' && before.c === SLASH) return name;
  return undefined;
}

/** The longest run of literal characters in a glob's tokens. */
function longestLiteral(tokens: readonly Token[]): string {
  let best = '';
  let run = '';
  for (const t of tokens) {
    if (t.t === 'lit') run += String.fromCharCode(t.c);
    else run = '';
    if (run.length > best.length) best = run;
  }
  return best;
}
