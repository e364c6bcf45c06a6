// An agent given several server URLs (nodes of one deployment, no balancer in front): it enrols
// with whichever answers, tries them in random order, and when the one it streams to dies it goes
// on with another, losing and duplicating nothing. Two real server processes on one database file.
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOutbox } from '../agent/deliver/outbox.js';
import { parseServerList, serverRotation, shuffled } from '../agent/deliver/servers.js';
import { createTransport } from '../agent/deliver/transport.js';
import { readAgentConfig } from '../agent/deliver/config.js';
import { openStateDb } from '../agent/state-db.js';
import { agentConfigSchema } from '../shared/protocol.js';
import { freePort, killAll, runCli, runCliAsync, startServerChild, waitFor } from './helpers/processes.js';
import { expectExactlyOnceInOrder } from './helpers/report-history.js';
import { makeTinyRoot } from './helpers/tiny-root.js';
import type { TinyRoot } from './helpers/tiny-root.js';

let tiny: TinyRoot;
beforeAll(() => {
  tiny = makeTinyRoot();
});
afterEach(() => killAll());
afterAll(() => tiny.remove());

/** A seeded random source, so an order can be asserted. */
function seeded(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

describe('several server URLs: the pure parts', () => {
  it('takes --server repeated and as comma lists, drops duplicates and trailing slashes, and names a bad one', () => {
    expect(parseServerList(['http://a:1/', 'http://b:2,http://c:3', 'http://a:1'])).toEqual(['http://a:1', 'http://b:2', 'http://c:3']);
    expect(() => parseServerList(['http://a:1,ftp://b'])).toThrow('--server: expected a URL like http://quicksand.example:7410, got "ftp://b"');
    expect(() => parseServerList(Array.from({ length: 17 }, (_, i) => `http://n${i}:1`))).toThrow('at most 16 URLs, got 17');
  });

  it('tries every URL once per round, in an order that differs between agents, never the same one twice in a row', () => {
    const urls = ['http://a', 'http://b', 'http://c'];
    const firsts = new Set<string>();
    for (let seed = 1; seed <= 30; seed++) {
      const rotation = serverRotation(urls, seeded(seed));
      const seen = Array.from({ length: 12 }, () => rotation.next());
      for (let round = 0; round < 4; round++) expect([...seen.slice(round * 3, round * 3 + 3)].sort()).toEqual(urls);
      for (let i = 1; i < seen.length; i++) expect(seen[i]).not.toBe(seen[i - 1]);
      firsts.add(seen[0]!);
    }
    // A fleet spreads: each URL is some agent's first.
    expect([...firsts].sort()).toEqual(urls);
    expect(shuffled([1, 2, 3, 4], seeded(7)).sort()).toEqual([1, 2, 3, 4]);
  });

  it('reads an agent.json without `servers` as before, and refuses a `servers` that is not a list of URLs', () => {
    expect(agentConfigSchema.parse({ server: 'http://a:1', agentId: 'x', token: 't' }).servers).toBeUndefined();
    const bad = agentConfigSchema.safeParse({ server: 'http://a:1', servers: ['http://a:1', 'mailto:x'], agentId: 'x', token: 't' });
    expect(bad.success).toBe(false);
    expect(JSON.stringify(bad.error?.issues[0]?.path)).toBe('["servers",1]');
  });
});

describe('several server URLs against two real server processes on one database', () => {
  it('enrols through the node that answers, keeps both, and streams on through the other when the one it uses is killed -9', async () => {
    const dir = path.join(tiny.dir, 'two-nodes');
    mkdirSync(dir, { recursive: true });
    const db = path.join(dir, 'server.db');
    const [portA, portB, deadPort] = [await freePort(), await freePort(), await freePort()];
    const a = await startServerChild(db, portA);
    const b = await startServerChild(db, portB);
    const nodes = new Map([[a.url, a], [b.url, b]]);
    const secret = runCli('server', ['enroll-secret', '--db', db]).stdout.trim();
    const apiToken = runCli('server', ['token', 'create', '--role', 'auditor', '--db', db]).stdout.trim();
    const state = path.join(dir, 'agent-state');

    // A node that is down at enrolment is skipped: the agent enrols with one that answers.
    const dead = `http://127.0.0.1:${deadPort}`;
    const enrolled = await runCliAsync('agent', ['enroll', '--server', `${dead},${a.url}`, '--server', b.url, '--secret', secret, '--state', state]);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    const config = await readAgentConfig(path.join(state, 'agent.json'));
    expect(config.servers).toEqual([dead, a.url, b.url]);
    expect([a.url, b.url]).toContain(config.server);
    expect(JSON.parse(readFileSync(path.join(state, 'agent.json'), 'utf8')).servers).toHaveLength(3);

    const stateDb = openStateDb(state);
    const outbox = createOutbox(stateDb);
    const report = await tiny.scan('two-nodes-host');
    const total = 1200;
    for (let i = 0; i < total; i++) outbox.enqueue(report, 'full', new Date());
    let acks = 0;
    const connectedTo: string[] = [];
    const transport = createTransport({
      config,
      outbox,
      host: { hostname: 'two-nodes-host' },
      image: report.image,
      onAck: () => acks++,
      log: (line) => {
        const m = /^connected to (\S+)/.exec(line);
        if (m) connectedTo.push(m[1]!);
      },
      backoff: { firstMaxMs: 100, baseMs: 200, capMs: 1000 },
    });
    transport.start();
    try {
      await waitFor('some acks', () => acks >= 200, 30_000, 5);
      const first = transport.server;
      expect(nodes.has(first)).toBe(true);
      await nodes.get(first)!.kill('SIGKILL');
      // Really mid-stream: reports were still waiting when its node died.
      expect(outbox.depth()).toBeGreaterThan(0);
      await waitFor('the outbox to drain through the other node', () => outbox.depth() === 0, 60_000);
      const survivor = [...nodes.keys()].find((u) => u !== first)!;
      expect(transport.server).toBe(survivor);
      // The dead URL may have been tried between them; every connection that opened was to a live node.
      expect(connectedTo[0]).toBe(first);
      expect(connectedTo.at(-1)).toBe(survivor);
      expect(connectedTo).not.toContain(dead);
      await expectExactlyOnceInOrder(survivor, apiToken, config.agentId, total);
    } finally {
      await transport.stop();
      stateDb.close();
    }
  });
});
