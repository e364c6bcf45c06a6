// A unified diff of two texts, line by line (Myers' O(ND) algorithm), bounded in work and in
// output: at most `maxEdits` edits are searched for (past that the changed middle is shown as
// one replacement, still a correct diff), and at most `maxChars` characters are written (whole
// hunks first; a cut hunk gets the counts of the lines it shows). Pure, no Node imports.

export interface UnifiedDiffOptions {
  /** Unchanged lines shown around each change (diff -u: 3). */
  context?: number;
  /** The most edits (inserted plus deleted lines) searched for a minimal diff. */
  maxEdits?: number;
  /** The longest diff written, in characters. */
  maxChars?: number;
  /** The most steps the search may take (diagonals tried plus lines compared): a bound on time for any input. */
  maxWork?: number;
}

export interface UnifiedDiff {
  /** `--- a/path`, `+++ b/path`, then the hunks; headers only when the texts are equal. */
  text: string;
  /** Hunks in the text and in the whole diff: fewer shown when it was cut at `maxChars`. */
  hunks: { shown: number; total: number };
  /** Cut at `maxChars`. */
  truncated: boolean;
  /** The texts differ in more than `maxEdits` lines: the changed middle is one replacement. */
  approximate: boolean;
}

export const DIFF_DEFAULTS = { context: 3, maxEdits: 1000, maxChars: 256 * 1024, maxWork: 5_000_000 } as const;

interface Lines {
  lines: string[];
  /** The text's last line has no newline after it. */
  noEol: boolean;
}

function splitLines(text: string): Lines {
  if (text === '') return { lines: [], noEol: false };
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') {
    lines.pop();
    return { lines, noEol: false };
  }
  return { lines, noEol: true };
}

type Op = 0 | 1 | 2; // 0 unchanged, 1 deleted (a), 2 inserted (b)

/**
 * The diff of `before` and `after` (null: the file does not exist on that side, shown as
 * /dev/null) as `path` names it (absolute, shown as `a/...` and `b/...`).
 */
export function unifiedDiff(before: string | null, after: string | null, path: string, options: UnifiedDiffOptions = {}): UnifiedDiff {
  const { context, maxEdits, maxChars, maxWork } = { ...DIFF_DEFAULTS, ...options };
  const a = splitLines(before ?? '');
  const b = splitLines(after ?? '');
  const header = `--- ${before === null ? '/dev/null' : quotePath(`a${path}`)}\n+++ ${after === null ? '/dev/null' : quotePath(`b${path}`)}\n`;

  // Lines as numbers: a line never holds '\n', so '\n' marks a last line without a newline.
  const ids = new Map<string, number>();
  const intern = (l: Lines): Int32Array => {
    const out = new Int32Array(l.lines.length);
    l.lines.forEach((line, i) => {
      const key = l.noEol && i === l.lines.length - 1 ? `\n${line}` : line;
      let id = ids.get(key);
      if (id === undefined) ids.set(key, (id = ids.size));
      out[i] = id;
    });
    return out;
  };
  const x = intern(a);
  const y = intern(b);
  const { ops, approximate } = editScript(x, y, maxEdits, maxWork);

  // Each op with the a-line and b-line it stands on (0-based), for the hunk headers.
  const hunks = groupHunks(ops, context);
  let text = header;
  let shown = 0;
  let truncated = false;
  for (const h of hunks) {
    const rendered = renderHunk(ops, h, a, b, maxChars - text.length);
    text += rendered.text;
    if (rendered.lines > 0) shown++;
    if (rendered.cut) {
      truncated = true;
      break;
    }
  }
  return { text, hunks: { shown, total: hunks.length }, truncated, approximate };
}

interface OpAt {
  op: Op;
  /** Index in a (unchanged, deleted) or b (inserted). */
  ai: number;
  bi: number;
}

/** The edit script: common prefix and suffix, and Myers' shortest script for the middle. */
function editScript(a: Int32Array, b: Int32Array, maxEdits: number, maxWork: number): { ops: OpAt[]; approximate: boolean } {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const ops: OpAt[] = [];
  for (let i = 0; i < start; i++) ops.push({ op: 0, ai: i, bi: i });
  const middle = myers(a.subarray(start, endA), b.subarray(start, endB), maxEdits, maxWork);
  const approximate = middle === null;
  if (middle === null) {
    for (let i = start; i < endA; i++) ops.push({ op: 1, ai: i, bi: start });
    for (let j = start; j < endB; j++) ops.push({ op: 2, ai: endA, bi: j });
  } else for (const m of middle) ops.push({ op: m.op, ai: m.ai + start, bi: m.bi + start });
  for (let i = endA, j = endB; i < a.length; i++, j++) ops.push({ op: 0, ai: i, bi: j });
  return { ops, approximate };
}

/** Myers' greedy shortest edit script; null when it needs more than `maxD` edits or `maxWork` steps. */
function myers(a: Int32Array, b: Int32Array, maxD: number, maxWork: number): OpAt[] | null {
  let work = 0;
  const n = a.length;
  const m = b.length;
  const limit = Math.min(n + m, maxD);
  const off = limit + 1;
  const v = new Int32Array(2 * limit + 3);
  // The furthest x on each diagonal before step d, kept for the walk back (at most maxD² / 2 numbers).
  const trace: Int32Array[] = [];
  for (let d = 0; d <= limit; d++) {
    trace.push(v.slice(off - d - 1, off + d + 2));
    for (let k = -d; k <= d; k += 2) {
      let xi = k === -d || (k !== d && v[off + k - 1]! < v[off + k + 1]!) ? v[off + k + 1]! : v[off + k - 1]! + 1;
      let yi = xi - k;
      const from = xi;
      while (xi < n && yi < m && a[xi] === b[yi]) {
        xi++;
        yi++;
      }
      work += 1 + xi - from;
      if (work > maxWork) return null;
      v[off + k] = xi;
      if (xi >= n && yi >= m) return walkBack(trace, d, n, m);
    }
  }
  return null;
}

function walkBack(trace: Int32Array[], depth: number, n: number, m: number): OpAt[] {
  const out: OpAt[] = [];
  let x = n;
  let y = m;
  for (let d = depth; d >= 0; d--) {
    const saved = trace[d]!;
    // saved[i] holds v[k] for k = i - d - 1.
    const at = (k: number): number => saved[k + d + 1]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : at(prevK);
    const prevY = d === 0 ? 0 : prevX - prevK;
    while (x > prevX && y > prevY) {
      x--;
      y--;
      out.push({ op: 0, ai: x, bi: y });
    }
    if (d > 0) {
      if (x === prevX) out.push({ op: 2, ai: x, bi: y - 1 });
      else out.push({ op: 1, ai: x - 1, bi: y });
    }
    x = prevX;
    y = prevY;
  }
  return out.reverse();
}

/** Ranges [from, to) of ops: each change with `context` unchanged ops around it, close ones merged. */
function groupHunks(ops: readonly OpAt[], context: number): Array<{ from: number; to: number }> {
  const out: Array<{ from: number; to: number }> = [];
  for (let i = 0; i < ops.length; i++) {
    if (ops[i]!.op === 0) continue;
    let last = i;
    for (let j = i + 1; j < ops.length; j++) {
      if (ops[j]!.op !== 0) last = j;
      else if (j - last > 2 * context) break;
    }
    const from = Math.max(0, i - context);
    const to = Math.min(ops.length, last + context + 1);
    out.push({ from, to });
    i = last;
  }
  return out;
}

const NO_EOL = '\\ No newline at end of file\n';

/** One hunk in at most `room` characters: a hunk that does not fit shows the lines that do. */
function renderHunk(ops: readonly OpAt[], h: { from: number; to: number }, a: Lines, b: Lines, room: number): { text: string; lines: number; cut: boolean } {
  const first = ops[h.from]!;
  const HEADER_ROOM = 64;
  let body = '';
  let oldCount = 0;
  let newCount = 0;
  let lines = 0;
  let cut = false;
  for (let i = h.from; i < h.to; i++) {
    const o = ops[i]!;
    const fromA = o.op !== 2;
    const line = fromA ? a.lines[o.ai]! : b.lines[o.bi]!;
    const lastOfA = fromA && a.noEol && o.ai === a.lines.length - 1;
    const lastOfB = o.op !== 1 && b.noEol && o.bi === b.lines.length - 1;
    const piece = `${o.op === 0 ? ' ' : o.op === 1 ? '-' : '+'}${line}\n${lastOfA || lastOfB ? NO_EOL : ''}`;
    if (body.length + piece.length + HEADER_ROOM > room) {
      cut = true;
      break;
    }
    body += piece;
    lines++;
    if (o.op !== 2) oldCount++;
    if (o.op !== 1) newCount++;
  }
  if (lines === 0) return { text: '', lines: 0, cut: true };
  // A side with no lines names the line before the hunk (diff -u: `-0,0` for an empty file).
  const oldStart = oldCount === 0 ? first.ai : first.ai + 1;
  const newStart = newCount === 0 ? first.bi : first.bi + 1;
  const range = (start: number, count: number): string => (count === 1 ? `${start}` : `${start},${count}`);
  return { text: `@@ -${range(oldStart, oldCount)} +${range(newStart, newCount)} @@\n${body}`, lines, cut };
}

/** A path as diff headers show it: as is, or quoted with C escapes when it holds odd characters (as git does). */
function quotePath(p: string): string {
  if (!/["\\\u0000-\u001f\u007f]/.test(p)) return p;
  const escaped = p.replace(/["\\\u0000-\u001f\u007f]/g, (c) => {
    const named: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\t': '\\t', '\r': '\\r' };
    return named[c] ?? `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`;
  });
  return `"${escaped}"`;
}
