// The reference docs against the code: every route the API app serves has its heading in
// docs/api.md, and the CLI docs list exactly the options each command accepts. Read from the
// app's own route table and the commands' own option definitions, not from a list kept here.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { COMMANDS as AGENT_COMMANDS } from '../agent/cli.js';
import { COMMANDS as SERVER_COMMANDS } from '../server/cli.js';
import { createApp } from '../server/api/app.js';
import { createMetrics } from '../server/metrics.js';
import { createSqliteStore } from '../server/store/sqlite-store.js';
import { STREAM_PATH } from '../shared/protocol.js';
import type { Command } from '../shared/command-line.js';

const doc = (name: string): string => readFileSync(path.resolve(import.meta.dirname, '../docs', name), 'utf8');

/** `### METHOD /path` headings. */
function documentedRoutes(markdown: string): string[] {
  return [...markdown.matchAll(/^### ([A-Z]+) (\/\S*)\s*$/gm)].map((m) => `${m[1]} ${m[2]}`);
}

/** The `## TOOL COMMAND` sections of a CLI doc, each with the flags of its options table. */
export function documentedOptions(markdown: string, tool: string): Map<string, { long: string[]; short: string[] }> {
  const sections = new Map<string, { long: string[]; short: string[] }>();
  let current: { long: string[]; short: string[] } | undefined;
  for (const line of markdown.split('\n')) {
    const heading = /^## (\S+) (\S+)\s*$/.exec(line);
    if (heading !== null) {
      current = heading[1] === tool ? { long: [], short: [] } : undefined;
      if (current !== undefined) sections.set(heading[2]!, current);
      continue;
    }
    if (/^## /.test(line)) current = undefined;
    if (current === undefined || !line.startsWith('|')) continue;
    const firstCell = line.split('|')[1] ?? '';
    for (const m of firstCell.matchAll(/`--([a-z0-9][a-z0-9-]*)/g)) current.long.push(m[1]!);
    for (const m of firstCell.matchAll(/`-([a-zA-Z])`/g)) current.short.push(m[1]!);
  }
  return sections;
}

async function loadAll<Io>(commands: Record<string, () => Promise<Command<Io>>>): Promise<Map<string, Command<Io>>> {
  return new Map(await Promise.all(Object.entries(commands).map(async ([name, load]) => [name, await load()] as const)));
}

/** What is wrong between one tool's doc and its commands, one line each. */
function optionMismatches(markdown: string, tool: string, commands: Map<string, Command<unknown>>): string[] {
  const problems: string[] = [];
  const sections = documentedOptions(markdown, tool);
  for (const [name, command] of commands) {
    const documented = sections.get(name);
    if (documented === undefined) {
      problems.push(`${tool} ${name}: no "## ${tool} ${name}" section`);
      continue;
    }
    for (const flag of documented.long) if (!Object.hasOwn(command.options, flag)) problems.push(`${tool} ${name}: documents --${flag}, which it does not accept`);
    for (const flag of Object.keys(command.options)) if (!documented.long.includes(flag)) problems.push(`${tool} ${name}: accepts --${flag}, which its options table does not list`);
    const shorts = Object.values(command.options).map((o) => o.short);
    for (const s of documented.short) if (!shorts.includes(s)) problems.push(`${tool} ${name}: documents -${s}, which it does not accept`);
  }
  for (const name of sections.keys()) if (!commands.has(name)) problems.push(`${tool} ${name}: documented, but there is no such command`);
  return problems;
}

const dir = mkdtempSync(path.join(tmpdir(), 'quicksand-docs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('docs/api.md', () => {
  it('has a heading for every route the API serves, and no heading for a route it does not', () => {
    const store = createSqliteStore(path.join(dir, 'server.db'));
    try {
      const app = createApp({ store, clock: () => new Date(), metrics: createMetrics() });
      // Middleware (the API token check) is registered as ALL; a body limit repeats its route.
      const served = [...new Set(app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`))];
      expect(served.length).toBeGreaterThan(20);
      const documented = documentedRoutes(doc('api.md'));
      expect(served.filter((r) => !documented.includes(r)), 'served but not in docs/api.md').toEqual([]);
      expect(documented.filter((r) => !served.includes(r)), 'in docs/api.md but not served').toEqual([]);
    } finally {
      store.close();
    }
  });

  it('describes the agent stream, which is an upgrade and not a route of the app', () => {
    expect(doc('api.md')).toContain(`\`${STREAM_PATH}\``);
  });
});

describe('the CLI docs', () => {
  it('list exactly the options of every agent command (docs/agent.md)', async () => {
    const commands = await loadAll(AGENT_COMMANDS);
    expect(commands.size).toBe(6);
    expect(optionMismatches(doc('agent.md'), 'quicksand-agent', commands as Map<string, Command<unknown>>)).toEqual([]);
  });

  it('list exactly the options of every server command (docs/server.md)', async () => {
    const commands = await loadAll(SERVER_COMMANDS);
    expect(optionMismatches(doc('server.md'), 'quicksand-server', commands as Map<string, Command<unknown>>)).toEqual([]);
  });

  it('mention no flag, anywhere in the reference, that no command accepts', async () => {
    const all = [...(await loadAll(AGENT_COMMANDS)).values(), ...(await loadAll(SERVER_COMMANDS)).values()];
    const accepted = new Set(all.flatMap((c) => Object.keys(c.options)));
    for (const name of ['agent.md', 'server.md', 'detection.md', '../README.md']) {
      const mentioned = [...doc(name).matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)].map((m) => m[1]!);
      expect(mentioned.filter((f) => !accepted.has(f)), name).toEqual([]);
    }
  });

  it('catch a flag that is documented but gone, and one accepted but undocumented', () => {
    const fake: Command<unknown> = { help: '', options: { root: { type: 'string' }, json: { type: 'boolean' } }, run: async () => 0 };
    const markdown = '## quicksand-agent scan\n\n| option | what |\n| --- | --- |\n| `--root DIR` | … |\n| `--jsn` | … |\n';
    expect(optionMismatches(markdown, 'quicksand-agent', new Map([['scan', fake]]))).toEqual([
      'quicksand-agent scan: documents --jsn, which it does not accept',
      'quicksand-agent scan: accepts --json, which its options table does not list',
    ]);
  });
});
