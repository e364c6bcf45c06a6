// The agent stream: authentication before the upgrade, then one session per agent connection.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { RawData, WebSocket } from 'ws';
import { MAX_FRAME_BYTES, STREAM_PATH, parseAgentFrame } from '../../shared/protocol.js';
import type { CommandFrame, ErrorFrame, HelloFrame, ServerFrame, WireErrorCode } from '../../shared/protocol.js';
import type { BatchWriter } from './batch-writer.js';
import type { Metrics } from '../metrics.js';
import type { RateLimiter } from './rate-limit.js';
import type { Credentials } from '../store/types.js';
import { SECURITY_HEADERS } from '../../shared/security-headers.js';
import { createRateLimiter } from './rate-limit.js';

export interface StreamOptions {
  credentials: Pick<Credentials, 'authenticateAgent'>;
  writer: BatchWriter;
  metrics: Metrics;
  /** The budget every authenticated upgrade takes from: bad tokens never reach it. */
  upgradeLimiter: RateLimiter;
  /** Upgrades per source address, counted before authentication. */
  addressLimiter?: { take(address: string): true | number };
  now: () => Date;
  /** Reports of one agent waiting for the writer before its socket is paused. */
  maxPendingPerAgent?: number;
  /** Heartbeats and replayed reports a connection may send per second (bursts of 20 times that). */
  heartbeatRate?: number;
  replayRate?: number;
  /** Frames above this get an error; twice this closes the connection with 1009 unread. */
  maxFrameBytes?: number;
  /** Bad frames tolerated per connection before it is closed with 1008. */
  maxStrikes?: number;
  pingIntervalMs?: number;
  /** Commands an agent is owed when it says hello (a baseline to upload for or to fetch). */
  commandsOnHello?: (agentId: string, hello: HelloFrame) => Promise<Array<Omit<CommandFrame, 'type'>>>;
  /** An agent's socket opened here, or its last one here closed (the node's sessions, for other nodes to see). */
  onOpened?: (agentId: string) => void;
  onClosed?: (agentId: string) => void;
  log?: (line: string) => void;
}

export interface Stream {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  isConnected(agentId: string): boolean;
  /** Sends a command to a connected agent; false when it is not connected. */
  sendCommand(agentId: string, command: 'scan-now' | Omit<CommandFrame, 'type'>): boolean;
  /** Closes an agent's connection (its token was revoked). */
  disconnect(agentId: string, reason: string): void;
  /** The agents whose sockets this node holds. */
  localAgents(): string[];
  close(): void;
}

// Close codes: 1008 policy violation, 1009 too big; 4001 replaced by a newer connection.
const CLOSE_POLICY = 1008;
const CLOSE_REPLACED = 4001;
const CLOSE_REVOKED = 4003;

export function createStream(opts: StreamOptions): Stream {
  const maxFrame = opts.maxFrameBytes ?? MAX_FRAME_BYTES;
  const maxStrikes = opts.maxStrikes ?? 3;
  const maxPending = opts.maxPendingPerAgent ?? 16;
  const heartbeatRate = opts.heartbeatRate ?? 1;
  const replayRate = opts.replayRate ?? 5;
  const { metrics } = opts;
  const wss = new WebSocketServer({ noServer: true, maxPayload: maxFrame * 2, perMessageDeflate: false, clientTracking: false });
  const sessions = new Map<string, WebSocket>();
  const alive = new WeakSet<WebSocket>();

  const ping = setInterval(() => {
    for (const ws of sessions.values()) {
      // No pong since the last ping: the peer is gone without a FIN (NAT drop, power cut).
      if (!alive.has(ws)) {
        ws.terminate();
        continue;
      }
      alive.delete(ws);
      ws.ping();
    }
  }, opts.pingIntervalMs ?? 30_000);
  ping.unref();

  function refuse(socket: Duplex, status: number, reason: string, code: string, extraHeaders: string[] = []): void {
    metrics.reject(metrics.upgradesRefused, reason);
    const body = JSON.stringify({ error: { code, message: reason } });
    const head = [
      `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Service Unavailable'}`,
      'Connection: close',
      'Content-Type: application/json',
      `Content-Length: ${Buffer.byteLength(body)}`,
      ...Object.entries(SECURITY_HEADERS).map(([name, value]) => `${name}: ${value}`),
      ...extraHeaders,
    ];
    socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  }

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const url = req.url ?? '';
    if (url.split('?')[0] !== STREAM_PATH) return refuse(socket, 404, 'not-found', 'NOT_FOUND');
    const fromAddress = opts.addressLimiter?.take(req.socket.remoteAddress ?? '') ?? true;
    if (fromAddress !== true) return refuse(socket, 503, 'address-rate-limited', 'SERVER_BUSY', [`Retry-After: ${fromAddress}`]);
    // Authentication first (a primary-key lookup and one sha256): a bad token never spends the
    // budget of the agents that have good ones.
    const auth = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    if (auth === null) return refuse(socket, 401, 'missing-token', 'AGENT_TOKEN_INVALID', ['WWW-Authenticate: Bearer']);
    opts.credentials.authenticateAgent(auth[1]!).then(
      (result) => {
        // The client may have given up while the store answered.
        if (socket.destroyed) return;
        if (!result.ok) {
          return refuse(socket, 401, result.reason === 'revoked' ? 'revoked-token' : 'invalid-token', result.reason === 'revoked' ? 'AGENT_TOKEN_REVOKED' : 'AGENT_TOKEN_INVALID', ['WWW-Authenticate: Bearer']);
        }
        const admitted = opts.upgradeLimiter.take();
        if (admitted !== true) return refuse(socket, 503, 'rate-limited', 'SERVER_BUSY', [`Retry-After: ${admitted}`]);
        wss.handleUpgrade(req, socket, head, (ws) => startSession(ws, result.agentId));
      },
      (err: unknown) => {
        // The store could not answer (a database away): the agent tries again later, as on a 503.
        opts.log?.(`stream: cannot check an agent token: ${err instanceof Error ? err.message : String(err)}`);
        if (!socket.destroyed) refuse(socket, 503, 'store-unavailable', 'SERVER_BUSY', ['Retry-After: 5']);
      },
    );
  }

  function send(ws: WebSocket, frame: ServerFrame): void {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(frame));
  }

  function startSession(ws: WebSocket, agentId: string): void {
    const previous = sessions.get(agentId);
    if (previous !== undefined) previous.close(CLOSE_REPLACED, 'replaced by a newer connection');
    sessions.set(agentId, ws);
    alive.add(ws);
    metrics.connected++;
    opts.onOpened?.(agentId);
    let helloDone = false;
    let strikes = 0;
    // Back-pressure: past `maxPending` reports waiting for the writer, the socket is paused and
    // what was already read waits here, so one agent never fills the shared queue.
    let pending = 0;
    const backlog: Array<() => void> = [];
    const nowMs = (): number => opts.now().getTime();
    const heartbeats = createRateLimiter(heartbeatRate, heartbeatRate * 20, nowMs);
    const replays = createRateLimiter(replayRate, replayRate * 20, nowMs);
    // Set while the shared queue is full: this connection's frames wait (paused, in order) for
    // the writer to have room, rather than being refused: a refusal makes the agent reconnect
    // and send again, and a fleet doing that at once turns a slow database into a storm.
    let waitingForRoom = false;
    const drainBacklog = (): void => {
      while (!waitingForRoom && pending < maxPending && backlog.length > 0) backlog.shift()!();
      if (!waitingForRoom && pending < maxPending && ws.isPaused) ws.resume();
    };
    const settled = (): void => {
      pending--;
      drainBacklog();
    };
    const waitForRoom = (submit: () => void): void => {
      backlog.unshift(submit);
      ws.pause();
      if (waitingForRoom) return;
      waitingForRoom = true;
      metrics.ingestWaits++;
      opts.writer.onRoom(() => {
        waitingForRoom = false;
        // Gone meanwhile: nothing of the backlog was acked, so the agent sends it again.
        if (ws.readyState !== ws.OPEN) backlog.length = 0;
        else drainBacklog();
      });
    };
    // One ack frame per stored batch, not one per report: acks are cumulative, and the writer
    // settles a batch's reports in one synchronous run, so the highest seq it committed for this
    // agent goes out once, in a microtask after that run. A replaying agent's backlog of hundreds
    // costs one socket write per batch.
    let ackDue = 0;
    const flushAck = (): void => {
      if (ackDue === 0) return;
      const seq = ackDue;
      ackDue = 0;
      if (ws.readyState === ws.OPEN) ws.send(`{"type":"ack","seq":${seq}}`);
    };
    const ack = (seq: number): void => {
      if (ackDue === 0) queueMicrotask(flushAck);
      ackDue = Math.max(ackDue, seq);
    };
    // Once one of this connection's reports failed to be stored, its later ones are not written:
    // they would commit ahead of it and break the chain. The agent closes and resends from there.
    let reportRefused = false;
    const toWriter = (item: Parameters<BatchWriter['write']>[0], done: Parameters<BatchWriter['write']>[1]): void => {
      const submit = (): void => {
        if (item.type === 'report' && reportRefused) return;
        pending++;
        const queued = opts.writer.write(item, (result) => {
          if (result instanceof Error && item.type === 'report') reportRefused = true;
          settled();
          done(result);
        });
        if (!queued) {
          pending--;
          waitForRoom(submit);
        }
      };
      if (!waitingForRoom && pending < maxPending) return submit();
      backlog.push(submit);
      ws.pause();
    };
    // Once the server decided to close, frames still in the pipe are not acted on.
    let closing = false;
    const closeWith = (code: number, reason: string): void => {
      closing = true;
      ws.close(code, reason);
    };

    const fail = (code: WireErrorCode, message: string, seq?: number): void => {
      // What was committed before this frame is acked before it is refused, as it happened.
      flushAck();
      metrics.reject(metrics.framesRejected, code);
      const frame: ErrorFrame = { type: 'error', code, message: message.slice(0, 2000) };
      if (seq !== undefined) frame.seq = seq;
      send(ws, frame);
      if (++strikes >= maxStrikes) closeWith(code === 'FRAME_TOO_LARGE' ? 1009 : CLOSE_POLICY, 'too many invalid frames');
    };

    ws.on('pong', () => alive.add(ws));
    ws.on('error', () => {
      // ws closes with 1009 itself when a frame exceeds maxPayload; nothing more to do here.
    });
    ws.on('close', () => {
      metrics.connected--;
      if (sessions.get(agentId) === ws) {
        sessions.delete(agentId);
        metrics.outboxDepth.delete(agentId);
        opts.onClosed?.(agentId);
      }
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      // Whatever a frame makes a handler throw costs its sender a strike, never the process.
      try {
        onFrame(data, isBinary);
      } catch (err) {
        fail('FRAME_INVALID', `frame could not be handled: ${(err as Error).message}`);
      }
    });
    const onFrame = (data: RawData, isBinary: boolean): void => {
      if (closing) return;
      const receivedAt = opts.now();
      const bytes = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer | ArrayBuffer).byteLength;
      if (bytes > maxFrame) return fail('FRAME_TOO_LARGE', `frame of ${bytes} bytes is over the limit of ${maxFrame}`);
      if (isBinary) return fail('FRAME_MALFORMED', 'frames are JSON text, not binary');
      const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as Buffer).toString('utf8');
      const parsed = parseAgentFrame(text);
      if (!parsed.ok) return fail(parsed.code, parsed.message);
      const frame = parsed.frame;
      if (frame.type !== 'heartbeat' && frame.agentId !== agentId) {
        // A token speaks for exactly one host. This is not a mistake a correct agent makes.
        metrics.reject(metrics.framesRejected, 'HOST_MISMATCH');
        send(ws, { type: 'error', code: 'HOST_MISMATCH', message: `${frame.type}.agentId: this connection's token belongs to agent ${agentId}` });
        closeWith(CLOSE_POLICY, 'frame for another host');
        return;
      }
      switch (frame.type) {
        case 'hello':
          helloDone = true;
          metrics.outboxDepth.set(agentId, frame.outboxDepth);
          toWriter({ type: 'hello', agentId, frame, receivedAt }, () => {});
          // What it missed while it was away: asked while it was offline, or derived meanwhile.
          opts.commandsOnHello?.(agentId, frame).then(
            (commands) => {
              for (const command of commands) send(ws, { type: 'command', ...command });
            },
            // Not fatal: the next hello asks again.
            (err: unknown) => opts.log?.(`stream: commands owed to agent ${agentId}: ${err instanceof Error ? err.message : String(err)}`),
          );
          return;
        case 'heartbeat':
          if (heartbeats.take() !== true) return fail('RATE_LIMITED', `heartbeats more often than ${heartbeatRate} per second`);
          metrics.outboxDepth.set(agentId, frame.outboxDepth);
          toWriter({ type: 'heartbeat', agentId, outboxDepth: frame.outboxDepth, receivedAt }, () => {});
          return;
        case 'report':
          if (!helloDone) return fail('HELLO_REQUIRED', 'send hello before the first report', frame.seq);
          if (frame.outboxDepth !== undefined) metrics.outboxDepth.set(agentId, frame.outboxDepth);
          toWriter({ type: 'report', agentId, frame, receivedAt }, (result) => {
            if (result instanceof Error) {
              flushAck();
              send(ws, { type: 'error', code: 'INTERNAL', message: 'the report could not be stored; it will be accepted when sent again', seq: frame.seq });
              return;
            }
            const t = opts.now();
            metrics.observeIngestLatency((t.getTime() - receivedAt.getTime()) / 1000, t.getTime());
            if (result.type === 'report' && result.outcome === 'stored') metrics.countStored(1, t.getTime());
            else {
              metrics.reportsDuplicate++;
              // A reconnecting agent resends what was not acked; a flood of replays is abuse.
              if (replays.take() !== true) fail('RATE_LIMITED', `reports already stored sent again more often than ${replayRate} per second`, frame.seq);
            }
            // Acked only now: the transaction holding it has committed.
            ack(frame.seq);
          });
          return;
      }
    };
  }

  return {
    handleUpgrade,
    isConnected: (agentId) => sessions.has(agentId),
    sendCommand(agentId, command) {
      const ws = sessions.get(agentId);
      if (ws === undefined) return false;
      send(ws, { type: 'command', ...(typeof command === 'string' ? { command } : command) });
      return true;
    },
    disconnect(agentId, reason) {
      sessions.get(agentId)?.close(CLOSE_REVOKED, reason);
    },
    localAgents: () => [...sessions.keys()],
    close() {
      clearInterval(ping);
      for (const ws of sessions.values()) ws.terminate();
      sessions.clear();
      wss.close();
    },
  };
}
