// Commands for agents across nodes. The API on any node queues a command as a row; every node
// hears its id (the store's listener: in-process for SQLite, LISTEN/NOTIFY for PostgreSQL) and the
// one holding the agent's socket claims and sends it. Whatever was missed (a node that reconnects
// to the database, an agent that reconnects to another node) is caught up from the pending rows.
import type { CommandFrame, HelloFrame } from '../../shared/protocol.js';
import type { AgentCommandName, AgentCommandRow, Cluster } from '../store/types.js';

/** The node's own sockets, as the stream holds them. */
export interface LocalSockets {
  isConnected(agentId: string): boolean;
  sendCommand(agentId: string, command: Omit<CommandFrame, 'type'>): boolean;
  disconnect(agentId: string, reason: string): void;
  localAgents(): string[];
}

/** What the API asks of the agents, wherever their sockets are. */
export interface AgentChannel {
  isConnected(agentId: string): Promise<boolean>;
  /** Queues the command for the node holding the agent's socket; false when no node holds it. */
  sendCommand(agentId: string, command: 'scan-now' | Omit<CommandFrame, 'type'>): Promise<boolean>;
  /** Closes the agent's socket wherever it is (its token was revoked). */
  disconnect(agentId: string, reason: string): Promise<void>;
}

export interface CommandRelayOptions {
  cluster: Cluster;
  nodeId: string;
  sockets: LocalSockets;
  now: () => Date;
  /** How often the node says its sessions are alive (and catches up on commands); a session not seen for 3 of these is gone. */
  heartbeatMs?: number;
  /** A command no node delivered within this is dropped (a scan asked for an hour ago is no use). */
  commandTtlMs?: number;
  log?: (line: string) => void;
}

export interface CommandRelay {
  channel: AgentChannel;
  /** The stream's hooks: a socket opened or closed here. */
  opened(agentId: string): void;
  closed(agentId: string): void;
  /** What an agent is owed at hello: `derived` (from its baselines) and the rows pending for it, each once. */
  onHello(agentId: string, derived: Array<Omit<CommandFrame, 'type'>>): Promise<Array<Omit<CommandFrame, 'type'>>>;
  /** One heartbeat now (the timer's work): sessions refreshed, dead nodes' sessions expired, commands caught up. */
  heartbeat(): Promise<void>;
  stop(): Promise<void>;
}

export const DEFAULT_NODE_HEARTBEAT_MS = 10_000;
const DEFAULT_COMMAND_TTL_MS = 5 * 60_000;
/** Sessions opened within this are written in one statement (thousands reconnect at once after a node dies). */
const OPEN_BATCH_MS = 20;

const frameOf = (row: AgentCommandRow): Omit<CommandFrame, 'type'> => ({
  command: row.command as CommandFrame['command'],
  id: String(row.id),
  ...(row.baseline === null ? {} : { baseline: row.baseline }),
});
const sameCommand = (a: Omit<CommandFrame, 'type'>, b: Omit<CommandFrame, 'type'>): boolean => a.command === b.command && a.baseline === b.baseline;

export async function startCommandRelay(opts: CommandRelayOptions): Promise<CommandRelay> {
  const { cluster, nodeId, sockets, now } = opts;
  const log = opts.log ?? (() => {});
  const heartbeatMs = opts.heartbeatMs ?? DEFAULT_NODE_HEARTBEAT_MS;
  const ttlMs = opts.commandTtlMs ?? DEFAULT_COMMAND_TTL_MS;
  const liveAfter = (): Date => new Date(now().getTime() - 3 * heartbeatMs);
  const failed = (what: string) => (err: unknown) => log(`node ${nodeId}: ${what}: ${err instanceof Error ? err.message : String(err)}`);

  // Session writes go one after another, so a close never overtakes the open it undoes.
  let writes: Promise<void> = Promise.resolve();
  const write = (what: string, fn: () => Promise<unknown>): Promise<void> => (writes = writes.then(fn).then(() => undefined, failed(what)));
  const opening = new Set<string>();
  let openTimer: NodeJS.Timeout | null = null;
  const flushOpens = (): Promise<void> => {
    openTimer = null;
    const ids = [...opening];
    opening.clear();
    return ids.length === 0 ? writes : write('cannot record sessions', () => cluster.openSessions(ids, nodeId, now()));
  };

  /** Sends a row to its agent if its socket is here and no node sent it yet. */
  async function deliver(row: AgentCommandRow): Promise<Omit<CommandFrame, 'type'> | null> {
    if (!sockets.isConnected(row.agentId)) return null;
    if (!(await cluster.claimCommand(row.id, nodeId, now()))) return null;
    if (row.command === 'disconnect') {
      sockets.disconnect(row.agentId, 'token revoked');
      return null;
    }
    return frameOf(row);
  }
  const send = (row: AgentCommandRow): Promise<void> =>
    deliver(row).then((frame) => {
      if (frame !== null) sockets.sendCommand(row.agentId, frame);
    });
  async function catchUp(agentIds: readonly string[]): Promise<void> {
    if (agentIds.length === 0) return;
    for (const row of await cluster.pendingCommandsFor(agentIds, now())) await send(row);
  }

  const listening = await cluster.listenCommands({
    command(id) {
      cluster
        .pendingCommand(id, now())
        .then((row) => (row === null ? undefined : send(row)))
        .catch(failed(`cannot deliver command ${id}`));
    },
    // Back on the database after losing it: what this node's agents were sent meanwhile, and
    // its sessions again (another node may have expired them).
    resync() {
      const agents = sockets.localAgents();
      void write('cannot record sessions again', () => cluster.openSessions(agents, nodeId, now()));
      catchUp(agents).catch(failed('cannot catch up on commands'));
    },
  });
  // A restarted node with the same id held sockets it no longer has.
  await cluster.clearSessions(nodeId);

  async function heartbeat(): Promise<void> {
    await flushOpens();
    const at = now();
    const expired = await cluster.heartbeat(nodeId, at, new Date(at.getTime() - 3 * heartbeatMs));
    if (expired > 0) log(`node ${nodeId}: ${expired} session(s) of nodes not seen for ${(3 * heartbeatMs) / 1000} s expired`);
    // The safety net under the announcements: nothing waits longer than one heartbeat.
    await catchUp(sockets.localAgents());
  }
  let beating: Promise<void> | null = null;
  const timer = setInterval(() => {
    if (beating !== null) return;
    beating = heartbeat()
      .catch(failed('heartbeat failed'))
      .finally(() => (beating = null));
  }, heartbeatMs);
  timer.unref();

  async function queue(agentId: string, command: AgentCommandName, baseline?: number): Promise<void> {
    const at = now();
    await cluster.queueCommand({ agentId, command, ...(baseline === undefined ? {} : { baseline }), now: at, expiresAt: new Date(at.getTime() + ttlMs) });
  }
  const connectedAnywhere = async (agentId: string): Promise<boolean> => sockets.isConnected(agentId) || (await cluster.sessionOf(agentId, liveAfter())) !== null;

  return {
    channel: {
      isConnected: connectedAnywhere,
      async sendCommand(agentId, command) {
        if (!(await connectedAnywhere(agentId))) return false;
        const c = typeof command === 'string' ? { command } : command;
        await queue(agentId, c.command, c.baseline);
        return true;
      },
      async disconnect(agentId) {
        if (await connectedAnywhere(agentId)) await queue(agentId, 'disconnect');
      },
    },
    opened(agentId) {
      opening.add(agentId);
      openTimer ??= setTimeout(() => void flushOpens(), OPEN_BATCH_MS);
    },
    closed(agentId) {
      if (opening.delete(agentId)) return;
      void write('cannot clear a session', () => cluster.closeSession(agentId, nodeId));
    },
    async onHello(agentId, derived) {
      const owed = [...derived];
      for (const row of await cluster.pendingCommandsFor([agentId], now())) {
        const frame = await deliver(row);
        if (frame !== null && !owed.some((c) => sameCommand(c, frame))) owed.push(frame);
      }
      return owed;
    },
    heartbeat,
    async stop() {
      clearInterval(timer);
      if (openTimer !== null) clearTimeout(openTimer);
      await beating;
      opening.clear();
      await listening.close();
      await write('cannot clear the sessions', () => cluster.clearSessions(nodeId));
    },
  };
}
