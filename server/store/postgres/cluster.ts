// Several nodes on one PostgreSQL database: sessions, commands as rows and leases, like the SQLite
// side; a queued command's id is announced with NOTIFY in its own transaction (sent on commit, to
// every node's LISTEN connection). Only these rare commands notify, never reports: each notifying
// commit takes a global lock. A session is live while its node's row in cluster_nodes is (a
// node's heartbeat writes that one row, not one per agent it holds); seenAt is the node's.
import pg from 'pg';
import type { AgentCommandName, AgentCommandRow, AgentSession, Cluster, CommandListener } from '../types.js';
import type { PgDatabase, Sql } from './db.js';

const CHANNEL = 'quicksand_commands';

interface CommandRecord { id: number; agent_id: string; command: string; baseline: number | null; created_at: string }
interface SessionRecord { agent_id: string; node_id: string; connected_at: string; seen_at: string }

const toCommand = (r: CommandRecord): AgentCommandRow => ({ id: r.id, agentId: r.agent_id, command: r.command as AgentCommandName, baseline: r.baseline, createdAt: r.created_at });
const toSession = (r: SessionRecord): AgentSession => ({ agentId: r.agent_id, nodeId: r.node_id, connectedAt: r.connected_at, seenAt: r.seen_at });
const COMMAND_COLUMNS = 'id, agent_id, command, baseline, created_at';
/** Sessions whose node was seen at or after $1. */
const LIVE_SESSIONS = `SELECT s.agent_id, s.node_id, s.connected_at, n.seen_at FROM agent_sessions s JOIN cluster_nodes n ON n.node_id = s.node_id WHERE n.seen_at >= $1`;

/** The node is alive at `now` (never moved back by a late call). */
async function beat(q: Sql, nodeId: string, now: Date): Promise<void> {
  await q.run(
    `INSERT INTO cluster_nodes AS n (node_id, seen_at) VALUES ($1, $2) ON CONFLICT (node_id) DO UPDATE SET seen_at = excluded.seen_at WHERE excluded.seen_at > n.seen_at`,
    [nodeId, now.toISOString()],
  );
}

/** `url`: where the LISTEN connection goes (a pooler in transaction mode cannot carry one: point it at the database). */
export function createPgCluster(db: PgDatabase, url: string): Cluster {
  return {
    async ping() {
      await db.run('SELECT 1');
    },
    async openSessions(agentIds, nodeId, now) {
      const ids = [...new Set(agentIds)];
      if (ids.length === 0) return;
      await db.run(
        `INSERT INTO agent_sessions (agent_id, node_id, connected_at, seen_at) SELECT a, $2, $3, $3 FROM unnest($1::text[]) AS a
         ON CONFLICT (agent_id) DO UPDATE SET node_id = EXCLUDED.node_id, connected_at = EXCLUDED.connected_at, seen_at = EXCLUDED.seen_at`,
        [ids, nodeId, now.toISOString()],
      );
      await beat(db, nodeId, now);
    },
    async closeSession(agentId, nodeId) {
      await db.run('DELETE FROM agent_sessions WHERE agent_id = $1 AND node_id = $2', [agentId, nodeId]);
    },
    async clearSessions(nodeId) {
      await db.run('DELETE FROM agent_sessions WHERE node_id = $1', [nodeId]);
    },
    heartbeat: (nodeId, now, expireBefore) =>
      db.tx(async (q) => {
        const before = expireBefore.toISOString();
        await beat(q, nodeId, now);
        const gone = await q.run(`DELETE FROM agent_sessions s WHERE NOT EXISTS (SELECT 1 FROM cluster_nodes n WHERE n.node_id = s.node_id AND n.seen_at >= $1)`, [before]);
        await q.run('DELETE FROM cluster_nodes WHERE seen_at < $1', [before]);
        await q.run('DELETE FROM agent_commands WHERE (delivered_at IS NOT NULL AND delivered_at < $1) OR expires_at < $1', [before]);
        return gone;
      }),
    async sessionOf(agentId, liveAfter) {
      const r = await db.row<SessionRecord>(`${LIVE_SESSIONS} AND s.agent_id = $2`, [liveAfter.toISOString(), agentId]);
      return r === undefined ? null : toSession(r);
    },
    async listSessions(liveAfter) {
      return (await db.rows<SessionRecord>(`${LIVE_SESSIONS} ORDER BY s.agent_id`, [liveAfter.toISOString()])).map(toSession);
    },
    queueCommand: (req) =>
      db.tx(async (q) => {
        const row = (await q.row<CommandRecord>(`INSERT INTO agent_commands (agent_id, command, baseline, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING ${COMMAND_COLUMNS}`, [
          req.agentId,
          req.command,
          req.baseline ?? null,
          req.now.toISOString(),
          req.expiresAt.toISOString(),
        ]))!;
        // Sent when this transaction commits: a node that hears it finds the row.
        await q.run('SELECT pg_notify($1, $2)', [CHANNEL, String(row.id)]);
        return toCommand(row);
      }),
    async pendingCommand(id, now) {
      const r = await db.row<CommandRecord>(`SELECT ${COMMAND_COLUMNS} FROM agent_commands WHERE id = $1 AND delivered_at IS NULL AND expires_at > $2`, [id, now.toISOString()]);
      return r === undefined ? null : toCommand(r);
    },
    async pendingCommandsFor(agentIds, now) {
      if (agentIds.length === 0) return [];
      const rows = await db.rows<CommandRecord>(`SELECT ${COMMAND_COLUMNS} FROM agent_commands WHERE delivered_at IS NULL AND expires_at > $1 AND agent_id = ANY($2::text[]) ORDER BY id`, [now.toISOString(), [...agentIds]]);
      return rows.map(toCommand);
    },
    async claimCommand(id, nodeId, now) {
      return (await db.run('UPDATE agent_commands SET delivered_at = $1, delivered_by = $2 WHERE id = $3 AND delivered_at IS NULL', [now.toISOString(), nodeId, id])) === 1;
    },
    listenCommands: (listener) => listen(url, listener),
    async acquireLease(name, holder, now, ttlMs) {
      // A racing insert waits for the other and then sees its row: one holder either way.
      const changed = await db.run(
        `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
         WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= $4`,
        [name, holder, now.getTime() + ttlMs, now.getTime()],
      );
      return changed === 1;
    },
    async releaseLease(name, holder) {
      await db.run('DELETE FROM leases WHERE name = $1 AND holder = $2', [name, holder]);
    },
  };
}

/**
 * One connection of its own that LISTENs (a pooled one would be handed to others). When it is
 * lost it is opened again, with growing pauses, and the listener told to `resync`: whatever was
 * announced meanwhile is read from the rows.
 */
async function listen(url: string, listener: CommandListener): Promise<{ close(): Promise<void> }> {
  let closed = false;
  let client: pg.Client | null = null;
  let retry: NodeJS.Timeout | null = null;
  let pauseMs = 250;
  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: url, application_name: 'quicksand-server listen' });
    c.on('notification', (n) => {
      const id = Number(n.payload);
      if (n.channel === CHANNEL && Number.isSafeInteger(id)) listener.command(id);
    });
    const lost = (): void => {
      if (client !== c) return;
      client = null;
      c.end().catch(() => {});
      if (!closed) again();
    };
    c.on('error', lost);
    c.on('end', lost);
    await c.connect();
    await c.query(`LISTEN ${CHANNEL}`);
    client = c;
    pauseMs = 250;
  };
  const again = (): void => {
    retry = setTimeout(() => {
      retry = null;
      connect().then(
        () => listener.resync(),
        () => {
          pauseMs = Math.min(pauseMs * 2, 5000);
          if (!closed) again();
        },
      );
    }, pauseMs);
    retry.unref();
  };
  await connect();
  return {
    async close() {
      closed = true;
      if (retry !== null) clearTimeout(retry);
      const c = client;
      client = null;
      await c?.end().catch(() => {});
    },
  };
}
