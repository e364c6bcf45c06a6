// Several nodes on one database, the SQLite side: sessions, commands as rows and leases are rows
// like any other (another process on the same file sees them); the announcement of a queued
// command is in-process, which is all a single-node embedded server needs. A session is live
// while its node's row in cluster_nodes is (a node's heartbeat writes that one row, not one per
// agent it holds); seenAt is the node's.
import { EventEmitter } from 'node:events';
import type { Database as Db } from 'better-sqlite3';
import type { Synchronous } from './async-adapter.js';
import type { AgentCommandName, AgentCommandRow, AgentSession, Cluster, CommandListener } from './types.js';

interface CommandRecord { id: number; agent_id: string; command: string; baseline: number | null; created_at: string }
interface SessionRecord { agent_id: string; node_id: string; connected_at: string; seen_at: string }

const toCommand = (r: CommandRecord): AgentCommandRow => ({ id: r.id, agentId: r.agent_id, command: r.command as AgentCommandName, baseline: r.baseline, createdAt: r.created_at });
const toSession = (r: SessionRecord): AgentSession => ({ agentId: r.agent_id, nodeId: r.node_id, connectedAt: r.connected_at, seenAt: r.seen_at });

/** Sessions opened per transaction, so a reconnect storm does not hold the write lock for one long one. */
const CHUNK = 500;
/** Sessions whose node was seen at or after ?. */
const LIVE_SESSIONS = 'SELECT s.agent_id, s.node_id, s.connected_at, n.seen_at FROM agent_sessions s JOIN cluster_nodes n ON n.node_id = s.node_id WHERE n.seen_at >= ?';

export function createCluster(db: Db): Synchronous<Cluster> {
  const announced = new EventEmitter();
  announced.setMaxListeners(0);
  const open = db.prepare(
    `INSERT INTO agent_sessions (agent_id, node_id, connected_at, seen_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (agent_id) DO UPDATE SET node_id = excluded.node_id, connected_at = excluded.connected_at, seen_at = excluded.seen_at`,
  );
  // The node is alive at `at` (never moved back by a late call).
  const beat = db.prepare('INSERT INTO cluster_nodes (node_id, seen_at) VALUES (?, ?) ON CONFLICT (node_id) DO UPDATE SET seen_at = excluded.seen_at WHERE excluded.seen_at > cluster_nodes.seen_at');
  const openMany = db.transaction((agentIds: readonly string[], nodeId: string, at: string) => {
    for (const id of agentIds) open.run(id, nodeId, at, at);
    beat.run(nodeId, at);
  });
  const expireSessions = db.prepare('DELETE FROM agent_sessions WHERE NOT EXISTS (SELECT 1 FROM cluster_nodes n WHERE n.node_id = agent_sessions.node_id AND n.seen_at >= ?)');
  const expireNodes = db.prepare('DELETE FROM cluster_nodes WHERE seen_at < ?');
  const expireCommands = db.prepare('DELETE FROM agent_commands WHERE (delivered_at IS NOT NULL AND delivered_at < ?) OR expires_at < ?');
  const heartbeat = db.transaction((nodeId: string, now: string, before: string) => {
    beat.run(nodeId, now);
    const gone = expireSessions.run(before).changes;
    expireNodes.run(before);
    expireCommands.run(before, before);
    return gone;
  });
  const liveSession = db.prepare<[string, string], SessionRecord>(`${LIVE_SESSIONS} AND s.agent_id = ?`);
  const liveSessions = db.prepare<[string], SessionRecord>(`${LIVE_SESSIONS} ORDER BY s.agent_id`);
  // Commands wait minutes at most and are rare: all pending ones are few, and one read of them
  // filtered here beats a query per 500 of a node's agents at every heartbeat.
  const pendingAll = db.prepare<[string], CommandRecord>('SELECT id, agent_id, command, baseline, created_at FROM agent_commands WHERE delivered_at IS NULL AND expires_at > ? ORDER BY id');
  const insertCommand = db.prepare('INSERT INTO agent_commands (agent_id, command, baseline, created_at, expires_at) VALUES (?, ?, ?, ?, ?) RETURNING id, agent_id, command, baseline, created_at');
  const pendingOne = db.prepare('SELECT id, agent_id, command, baseline, created_at FROM agent_commands WHERE id = ? AND delivered_at IS NULL AND expires_at > ?');
  const claim = db.prepare('UPDATE agent_commands SET delivered_at = ?, delivered_by = ? WHERE id = ? AND delivered_at IS NULL');
  // Take the lease when it is free, expired or already ours; the row says who holds it after.
  const lease = db.prepare(
    `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
     WHERE leases.holder = excluded.holder OR leases.expires_at <= ?`,
  );
  const ping = db.prepare('SELECT 1');
  return {
    ping() {
      ping.get();
    },
    openSessions(agentIds, nodeId, now) {
      for (let i = 0; i < agentIds.length; i += CHUNK) openMany(agentIds.slice(i, i + CHUNK), nodeId, now.toISOString());
    },
    closeSession(agentId, nodeId) {
      db.prepare('DELETE FROM agent_sessions WHERE agent_id = ? AND node_id = ?').run(agentId, nodeId);
    },
    clearSessions(nodeId) {
      db.prepare('DELETE FROM agent_sessions WHERE node_id = ?').run(nodeId);
    },
    heartbeat: (nodeId, now, expireBefore) => heartbeat.immediate(nodeId, now.toISOString(), expireBefore.toISOString()),
    sessionOf(agentId, liveAfter) {
      const r = liveSession.get(liveAfter.toISOString(), agentId);
      return r === undefined ? null : toSession(r);
    },
    listSessions(liveAfter) {
      return liveSessions.all(liveAfter.toISOString()).map(toSession);
    },
    queueCommand(req) {
      const row = toCommand(insertCommand.get(req.agentId, req.command, req.baseline ?? null, req.now.toISOString(), req.expiresAt.toISOString()) as CommandRecord);
      // Committed (no transaction is open around it): a listener that reads it finds it.
      announced.emit('command', row.id);
      return row;
    },
    pendingCommand(id, now) {
      const r = pendingOne.get(id, now.toISOString()) as CommandRecord | undefined;
      return r === undefined ? null : toCommand(r);
    },
    pendingCommandsFor(agentIds, now) {
      if (agentIds.length === 0) return [];
      const wanted = new Set(agentIds);
      return pendingAll.all(now.toISOString()).filter((r) => wanted.has(r.agent_id)).map(toCommand);
    },
    claimCommand: (id, nodeId, now) => claim.run(now.toISOString(), nodeId, id).changes === 1,
    listenCommands(listener: CommandListener) {
      const onCommand = (id: number): void => listener.command(id);
      announced.on('command', onCommand);
      return {
        async close() {
          announced.off('command', onCommand);
        },
      };
    },
    acquireLease(name, holder, now, ttlMs) {
      return lease.run(name, holder, now.getTime() + ttlMs, now.getTime()).changes === 1;
    },
    releaseLease(name, holder) {
      db.prepare('DELETE FROM leases WHERE name = ? AND holder = ?').run(name, holder);
    },
  };
}
