// The rules editor's pure core: a rule document's text checked by the API's own parser
// (parseRuleSet and the schema it uses), each refusal tied to the line of the value it names.
import { ruleSetSchema, parseRuleSet } from '../../shared/rules.js';
import type { RuleSet } from '../../shared/rules.js';
import { formatIssuePath } from '../../shared/schema-errors.js';
import { isQuicksandError } from '../../shared/errors.js';

export interface RuleProblem {
  /** 1-based line of the document the message is about; null when it names none. */
  line: number | null;
  /** The field, as the API's messages name it: `rules[2].action.type`, `(document)`. */
  path: string;
  message: string;
}

/** Deeper than this is no rule document (the schema's deepest is 5), and is refused before parsing. */
const MAX_DEPTH = 32;
const MAX_PROBLEMS = 50;

const lineAt = (text: string, offset: number): number => {
  let n = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
};

/** The first offset where brackets nest deeper than `max` (outside strings), or -1. */
function tooDeep(text: string, max: number): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '{' || ch === '[') {
      if (++depth > max) return i;
    } else if (ch === '}' || ch === ']') depth--;
  }
  return -1;
}

/** Where a text stops being JSON: its offset and what was expected there. */
class JsonSyntax extends Error {
  constructor(readonly offset: number, expected: string) {
    super(expected);
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;

/**
 * The line each value of a JSON text starts on, by its path as the API's messages write it
 * (`rules[0].match.path`); a text that is not JSON throws JsonSyntax at the first offset that is
 * wrong (V8's messages do not always say where).
 */
export function jsonValueLines(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let i = 0;
  let line = 1;
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) {
      if (text[i] === '\n') line++;
      i++;
    }
  };
  const token = (re: RegExp, what: string): string => {
    re.lastIndex = i;
    const m = re.exec(text);
    if (m === null) throw new JsonSyntax(i, what);
    i += m[0].length;
    return m[0];
  };
  const expect = (ch: string, what: string) => {
    ws();
    if (text[i] !== ch) throw new JsonSyntax(i, what);
    i++;
  };
  const value = (path: PropertyKey[]) => {
    ws();
    out.set(formatIssuePath(path), line);
    const ch = text[i];
    if (ch === '{' || ch === '[') {
      const close = ch === '{' ? '}' : ']';
      i++;
      ws();
      if (text[i] === close) {
        i++;
        return;
      }
      for (let n = 0; ; n++) {
        ws();
        if (ch === '{') {
          const key = JSON.parse(token(STRING, 'a property name in double quotes')) as string;
          expect(':', 'a colon after the property name');
          value([...path, key]);
        } else value([...path, n]);
        ws();
        if (text[i] === close) {
          i++;
          return;
        }
        if (text[i] !== ',') throw new JsonSyntax(i, `a comma or ${close}`);
        i++;
      }
    }
    if (ch === '"') token(STRING, 'a string');
    else if (text.startsWith('true', i) || text.startsWith('null', i)) i += 4;
    else if (text.startsWith('false', i)) i += 5;
    else token(NUMBER, 'a value');
  };
  value([]);
  ws();
  if (i < text.length) throw new JsonSyntax(i, 'the end of the document');
  return out;
}

/** The line of the deepest value on the path that the document has (a missing field: its object's). */
function lineOf(lines: Map<string, number>, path: readonly PropertyKey[]): number | null {
  for (let n = path.length; n >= 0; n--) {
    const l = lines.get(formatIssuePath(path.slice(0, n)));
    if (l !== undefined) return l;
  }
  return null;
}

/** The rule set the text holds, or every problem with it (at most 50), each at its line. */
export function checkRulesText(text: string): { set: RuleSet } | { problems: RuleProblem[] } {
  const deep = tooDeep(text, MAX_DEPTH);
  if (deep >= 0) return { problems: [{ line: lineAt(text, deep), path: '(document)', message: `nested deeper than ${MAX_DEPTH} levels` }] };
  let lines: Map<string, number>;
  try {
    lines = jsonValueLines(text);
  } catch (err) {
    if (!(err instanceof JsonSyntax)) throw err;
    const ln = lineAt(text, err.offset);
    const column = err.offset - text.lastIndexOf('\n', err.offset - 1);
    const found = err.offset >= text.length ? 'the end' : JSON.stringify(text[err.offset]);
    return { problems: [{ line: ln, path: '(document)', message: `not JSON: expected ${err.message} at line ${ln} column ${column}, found ${found}` }] };
  }
  const value: unknown = JSON.parse(text);
  const r = ruleSetSchema.safeParse(value);
  if (!r.success) return { problems: r.error.issues.slice(0, MAX_PROBLEMS).map((i) => ({ line: lineOf(lines, i.path), path: formatIssuePath(i.path), message: i.message })) };
  try {
    return { set: parseRuleSet(value, 'the rules') };
  } catch (err) {
    if (!isQuicksandError(err)) throw err;
    // parseRuleSet's own checks (an id used twice), one `path: message` line each after the first.
    return {
      problems: err.message.split('\n').slice(1).map((l) => {
        const m = /^(\w+)\[(\d+)\]\.(\w+): (.*)$/.exec(l);
        return m === null ? { line: null, path: '(document)', message: l } : { line: lineOf(lines, [m[1]!, Number(m[2]), m[3]!]), path: `${m[1]}[${m[2]}].${m[3]}`, message: m[4]! };
      }),
    };
  }
}
