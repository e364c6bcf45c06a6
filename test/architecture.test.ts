// The folder map as a rule: arrows between folders point down the flow, agent/ and server/ never
// import each other, shared/ imports neither, and no module takes part in an import cycle. Read
// from the sources with a regex over import / export-from / dynamic import, type imports included.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(import.meta.dirname, '..');
const TREES = ['agent', 'server', 'shared', 'test', 'bench', 'scripts'];

/**
 * The agent's layers, in the order of the flow. A file may import its own folder and any
 * earlier layer. `base` is the few files every stage needs (the root being looked at, the state
 * database, the V8 heap flags the hashing threads reapply); `entry` the command line itself.
 */
const AGENT_LAYERS: ReadonlyArray<readonly [layer: string, rank: number]> = [
  ['base', 0],
  ['collect', 1],
  ['fingerprint', 2],
  ['manifest', 3],
  ['diff', 4],
  ['containers', 5],
  ['deliver', 6],
  ['daemon', 7],
  ['commands', 8],
  ['entry', 9],
];
const AGENT_BASE = ['root.ts', 'state-db.ts', 'sqlite.ts', 'heap-flags.ts'];
const AGENT_ENTRY = ['cli.ts', 'main.ts'];

/**
 * The server's layers. Folders of one rank are peers and do not import each other: the API, the
 * agent stream, the schedules (and later the web console and exports) meet only in server.ts.
 */
const SERVER_LAYERS: ReadonlyArray<readonly [layer: string, rank: number]> = [
  ['domain', 0],
  ['alerts', 1],
  ['store', 2],
  // People's audited acts (users, credentials, sinks) that the API, the console and the CLI all make.
  ['admin', 2.5],
  ['api', 3],
  ['stream', 3],
  ['schedules', 3],
  ['web', 3],
  ['export', 3],
  ['compose', 4],
  ['commands', 5],
  ['entry', 6],
];
const SERVER_DOMAIN = ['rules.ts', 'classify.ts', 'baseline.ts', 'finding-triage.ts', 'secrets.ts', 'metrics.ts', 'passwords.ts'];
const SERVER_COMPOSE = ['server.ts'];
const SERVER_ENTRY = ['cli.ts', 'main.ts'];
/** Outside store/, the store is reached through its interface; only these may build one. */
const STORE_INTERFACE = 'server/store/types.ts';
const STORE_BUILDERS = ['server/store/sqlite-store.ts', 'server/store/ingest-thread.ts', 'server/store/open.ts'];

export interface ImportEdge {
  from: string;
  to: string;
  /** As written, for messages. */
  specifier: string;
}

const IMPORT_RE = /(?:^|[^.\w])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+\s+from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

export function importsOf(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(IMPORT_RE)) found.push((m[1] ?? m[2])!);
  return found;
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(REPO, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...tsFiles(rel));
    else if (e.name.endsWith('.ts') || e.name.endsWith('.tsx')) out.push(rel);
  }
  return out;
}

/** Every relative import between the repository's .ts files, resolved to repository paths. */
export function importGraph(files: readonly string[], read: (file: string) => string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const from of files) {
    for (const specifier of importsOf(read(from))) {
      if (!specifier.startsWith('.')) continue;
      const ts = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier)).replace(/\.js$/, '.ts');
      // A page written in JSX is imported as `./page.js` too.
      const to = !files.includes(ts) && files.includes(`${ts}x`) ? `${ts}x` : ts;
      edges.push({ from, to, specifier });
    }
  }
  return edges;
}

const isTest = (file: string): boolean => file.endsWith('.test.ts');

function layerOf(file: string): { tree: 'agent' | 'server'; layer: string; rank: number } | null {
  const [tree, second, third] = file.split('/');
  if (tree !== 'agent' && tree !== 'server') return null;
  const layers = tree === 'agent' ? AGENT_LAYERS : SERVER_LAYERS;
  let layer: string;
  if (third !== undefined) layer = second!;
  else if (tree === 'agent') layer = AGENT_BASE.includes(second!) ? 'base' : AGENT_ENTRY.includes(second!) ? 'entry' : 'unplaced';
  else layer = SERVER_DOMAIN.includes(second!) ? 'domain' : SERVER_COMPOSE.includes(second!) ? 'compose' : SERVER_ENTRY.includes(second!) ? 'entry' : 'unplaced';
  const rank = layers.find(([name]) => name === layer)?.[1];
  return { tree, layer, rank: rank ?? -1 };
}

/** Every broken rule, one line each. Pure: the graph and the file list are given. */
export function boundaryViolations(files: readonly string[], edges: readonly ImportEdge[]): string[] {
  const problems: string[] = [];
  for (const file of files) {
    const placed = layerOf(file);
    // A unit test sits beside its module, wherever that is.
    if (placed !== null && placed.rank < 0 && !isTest(file)) problems.push(`${file}: not in the folder map (architecture.test.ts): put it in a stage folder or name its layer`);
  }
  for (const { from, to, specifier } of edges) {
    const a = from.split('/')[0];
    const b = to.split('/')[0];
    if (a === 'shared' && (b === 'agent' || b === 'server')) problems.push(`${from}: shared/ imports ${b}/ ("${specifier}")`);
    if ((a === 'agent' && b === 'server') || (a === 'server' && b === 'agent')) problems.push(`${from}: ${a}/ imports ${b}/ ("${specifier}")`);
    if (a !== b || isTest(from)) continue;
    const src = layerOf(from);
    const dst = layerOf(to);
    if (src === null || dst === null || src.rank < 0 || dst.rank < 0) continue;
    if (src.layer !== dst.layer && dst.rank >= src.rank) {
      problems.push(`${from}: ${src.tree}/${src.layer} imports ${dst.tree}/${dst.layer}, ${dst.rank === src.rank ? 'a peer' : 'a later layer'} ("${specifier}")`);
    }
    if (a === 'server' && to.startsWith('server/store/') && !from.startsWith('server/store/') && to !== STORE_INTERFACE) {
      const composes = src.layer === 'compose' || src.layer === 'commands';
      if (!(composes && STORE_BUILDERS.includes(to))) problems.push(`${from}: reaches into the store past its interface ${STORE_INTERFACE} ("${specifier}")`);
    }
  }
  return problems;
}

/** Every import cycle (strongly connected components of more than one module, or a self-import). */
export function importCycles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, Set<string>>();
  for (const { from, to } of edges) {
    if (!next.has(from)) next.set(from, new Set());
    next.get(from)!.add(to);
  }
  // Tarjan's algorithm.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter += 1;
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || next.get(v)?.has(v)) cycles.push(component.sort());
    }
  };
  for (const v of [...next.keys()].sort()) if (!index.has(v)) visit(v);
  return cycles;
}

/** The modules `entry` loads before running anything: its static imports, transitively. */
export function staticClosure(entry: string, read: (file: string) => string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    // Static value imports only: `import type` is erased, `import()` waits for its moment.
    const source = read(file).replace(/import\(\s*['"][^'"]+['"]\s*\)/g, '');
    for (const m of source.matchAll(/(?:^|\n)\s*(?:import|export)\s+(?!type\s)(?:[\w*{}\s,$]+\s+from\s+)?['"]([^'"]+)['"]/g)) {
      const specifier = m[1]!;
      if (specifier.startsWith('.')) todo.push(path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier)).replace(/\.js$/, '.ts'));
      else if (!specifier.startsWith('node:')) packages.add(specifier.split('/')[0]!);
    }
  }
  return { files, packages };
}

const files = TREES.flatMap(tsFiles);
const read = (file: string): string => readFileSync(path.join(REPO, file), 'utf8');
const edges = importGraph(files, read);
const sources = files.filter((f) => !isTest(f) && ['agent', 'server', 'shared'].includes(f.split('/')[0]!));

describe('the folder map', () => {
  it('finds the imports it checks', () => {
    // A regex that silently matched nothing would pass every rule below.
    expect(edges.length).toBeGreaterThan(300);
    expect(edges).toContainEqual({ from: 'agent/main.ts', to: 'agent/cli.ts', specifier: './cli.js' });
    expect(edges.some((e) => e.from === 'agent/cli.ts' && e.to === 'agent/commands/scan.ts')).toBe(true);
    for (const e of edges) expect(files, `${e.from} imports "${e.specifier}", which is not a file`).toContain(e.to);
  });

  it('has arrows only down the flow: shared/ alone, agent/ and server/ apart, every stage before the next', () => {
    expect(boundaryViolations(files, edges)).toEqual([]);
  });

  it('has no import cycle', () => {
    expect(importCycles(edges.filter((e) => sources.includes(e.from)))).toEqual([]);
  });

  it('fails on an import up the flow, across agent/server, out of shared/, past the store interface, or in a circle', () => {
    const graph = (pairs: Array<[string, string]>): ImportEdge[] => pairs.map(([from, to]) => ({ from, to, specifier: to }));
    const all = ['agent/fingerprint/walk.ts', 'agent/diff/differ.ts', 'server/api/hosts.ts', 'server/stream/stream.ts', 'server/store/triage.ts', 'server/store/types.ts', 'shared/report.ts', 'shared/summary.ts'];
    expect(boundaryViolations(all, graph([['agent/fingerprint/walk.ts', 'agent/diff/differ.ts']]))).toEqual([
      'agent/fingerprint/walk.ts: agent/fingerprint imports agent/diff, a later layer ("agent/diff/differ.ts")',
    ]);
    expect(boundaryViolations(all, graph([['agent/diff/differ.ts', 'server/store/types.ts']]))[0]).toMatch(/agent\/ imports server\//);
    expect(boundaryViolations(all, graph([['shared/report.ts', 'agent/diff/differ.ts']]))[0]).toMatch(/shared\/ imports agent\//);
    expect(boundaryViolations(all, graph([['server/api/hosts.ts', 'server/stream/stream.ts']]))[0]).toMatch(/a peer/);
    expect(boundaryViolations(all, graph([['server/api/hosts.ts', 'server/store/triage.ts']]))[0]).toMatch(/past its interface/);
    expect(boundaryViolations(['agent/stray.ts'], [])[0]).toMatch(/not in the folder map/);
    expect(importCycles(graph([['shared/report.ts', 'shared/summary.ts'], ['shared/summary.ts', 'shared/report.ts']]))).toEqual([['shared/report.ts', 'shared/summary.ts']]);
  });

  it('loads no daemon or server-side package for a scan or a manifest run', () => {
    // Measured: ws and node-cron cost a scan about 70 ms of its 0.3 s start.
    for (const command of ['agent/commands/scan.ts', 'agent/commands/manifest.ts']) {
      const { packages } = staticClosure(command, read);
      expect([...packages].filter((p) => ['ws', 'node-cron'].includes(p)), command).toEqual([]);
    }
    expect(staticClosure('agent/cli.ts', read).files).not.toContain('agent/commands/scan.ts');
  });
});
