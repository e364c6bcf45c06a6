// One agent token, two machines: the server tells a reboot (a new boot id) from a second machine
// (another machine-id, or two boot ids taking turns). A real server on loopback, the agent's own
// transport saying hello with the host facts each "machine" would have.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HelloFrame } from '../shared/protocol.js';
import { createOutbox } from '../agent/deliver/outbox.js';
import { openStateDb } from '../agent/state-db.js';
import { createTransport } from '../agent/deliver/transport.js';
import { enrollAgent } from '../agent/deliver/enroll.js';
import { startServer } from '../server/server.js';
import type { RunningServer } from '../server/server.js';
import { waitFor } from './helpers/processes.js';

const MACHINE = '0f'.repeat(16);
const OTHER_MACHINE = 'e4'.repeat(16);
const boot = (n: number): string => `0000000${n}-0000-4000-8000-000000000000`;

let dir: string;
let server: RunningServer;
let secret: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'quicksand-clone-'));
  server = await startServer({ db: path.join(dir, 'server.db'), port: 0, host: '127.0.0.1' });
  secret = await server.store.createEnrollSecret(new Date());
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Connects as `config`'s agent with these host facts, waits until the server stored the hello, disconnects. */
async function hello(config: { server: string; agentId: string; token: string }, host: HelloFrame['host']): Promise<void> {
  // A stored hello moves the host's lastSeen; one from a second machine the finding's instead.
  const seen = async (): Promise<string> => JSON.stringify([(await server.store.getHost(config.agentId, new Date()))!.lastSeen, (await clones(config.agentId)).map((f) => f.lastSeen)]);
  const before = await seen();
  const db = openStateDb(mkdtempSync(path.join(dir, 'agent-')));
  const transport = createTransport({ config, outbox: createOutbox(db), host, image: null });
  transport.start();
  try {
    await waitFor('the hello stored', async () => (await seen()) !== before, 10_000, 20);
  } finally {
    await transport.stop();
    db.close();
  }
}

async function clones(agentId: string) {
  return (await server.store.listFindings(agentId, { state: 'open' }, new Date()))!.filter((f) => f.kind === 'identity-cloned');
}

describe('identity-cloned', () => {
  it('is not raised for the enrolled machine, across reboots', async () => {
    const config = await enrollAgent(server.url, secret, 'db-1', MACHINE);
    expect(await server.store.getHost(config.agentId, new Date())).toMatchObject({ machineId: MACHINE, status: 'enrolled' });
    for (const b of [1, 1, 2, 3]) await hello(config, { hostname: 'db-1', machineId: MACHINE, bootId: boot(b) });
    expect(await clones(config.agentId)).toEqual([]);
  });

  it('is raised, critical, when the token says hello from another machine-id, and the host keeps its own record', async () => {
    const config = await enrollAgent(server.url, secret, 'web-1', MACHINE);
    await hello(config, { hostname: 'web-1', machineId: MACHINE, bootId: boot(1) });
    await hello(config, { hostname: 'web-1-copy', machineId: OTHER_MACHINE, bootId: boot(1) });
    await hello(config, { hostname: 'web-1-copy', machineId: OTHER_MACHINE, bootId: boot(1) });
    // One finding per other machine, however often it connects.
    expect(await clones(config.agentId)).toEqual([
      expect.objectContaining({ severity: 'critical', source: 'server', detail: expect.objectContaining({ machineId: OTHER_MACHINE, hostname: 'web-1-copy' }) }),
    ]);
    expect(await server.store.getHost(config.agentId, new Date())).toMatchObject({ hostname: 'web-1', machineId: MACHINE, status: 'pet' });
  });

  it('is raised when two machines with one machine-id take turns on one token (boot ids go back)', async () => {
    // Enrolled by an agent that did not say its machine-id: the first hello's counts.
    const config = await enrollAgent(server.url, secret, 'cache-1');
    await hello(config, { hostname: 'cache-1', machineId: MACHINE, bootId: boot(1) });
    await hello(config, { hostname: 'cache-1', machineId: MACHINE, bootId: boot(2) });
    expect(await clones(config.agentId)).toEqual([]);
    await hello(config, { hostname: 'cache-1', machineId: MACHINE, bootId: boot(1) });
    expect(await clones(config.agentId)).toEqual([expect.objectContaining({ severity: 'critical', detail: expect.objectContaining({ bootId: boot(1) }) })]);
  });
});
