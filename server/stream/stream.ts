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

export interface StreamOptions {
  credentials: Pick<Credentials, 'authenticateAgent'>;
  writer: BatchWriter;
  metrics: Metrics;
  upgradeLimiter: RateLimiter;
  now: () => Date;
  /** Frames above this get an error; twice this closes the connection with 1009 unread. */
  maxFrameBytes?: number;
  /** Bad frames tolerated per connection before it is closed with 1008. */
  maxStrikes?: number;
  pingIntervalMs?: number;
  /** Commands an agent is owed when it says hello (a baseline to upload for or to fetch). */
  commandsOnHello?: (agentId: string, hello: HelloFrame) => Array<Omit<CommandFrame, 'type'>>;
}

export interface Stream {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  isConnected(agentId: string): boolean;
  /** Sends a command to a connected agent; false when it is not connected. */
  sendCommand(agentId: string, command: 'scan-now' | Omit<CommandFrame, 'type'>): boolean;
  /** Closes an agent's connection (its token was revoked). */
  disconnect(agentId: string, reason: string): void;
  close(): void;
}

// Close codes: 1008 policy violation, 1009 too big; 4001 replaced by a newer connection.
const CLOSE_POLICY = 1008;
const CLOSE_REPLACED = 4001;
const CLOSE_REVOKED = 4003;

export function createStream(opts: StreamOptions): Stream {
  const maxFrame = opts.maxFrameBytes ?? MAX_FRAME_BYTES;
  const maxStrikes = opts.maxStrikes ?? 3;
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
      ...extraHeaders,
    ];
    socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  }

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const url = req.url ?? '';
    if (url.split('?')[0] !== STREAM_PATH) return refuse(socket, 404, 'not-found', 'NOT_FOUND');
    const admitted = opts.upgradeLimiter.take();
    if (admitted !== true) return refuse(socket, 503, 'rate-limited', 'SERVER_BUSY', [`Retry-After: ${admitted}`]);
    const auth = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    if (auth === null) return refuse(socket, 401, 'missing-token', 'AGENT_TOKEN_INVALID', ['WWW-Authenticate: Bearer']);
    const result = opts.credentials.authenticateAgent(auth[1]!);
    if (!result.ok) {
      return refuse(socket, 401, result.reason === 'revoked' ? 'revoked-token' : 'invalid-token', result.reason === 'revoked' ? 'AGENT_TOKEN_REVOKED' : 'AGENT_TOKEN_INVALID', ['WWW-Authenticate: Bearer']);
    }
    wss.handleUpgrade(req, socket, head, (ws) => startSession(ws, result.agentId));
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
    let helloDone = false;
    let strikes = 0;
    // Once the server decided to close, frames still in the pipe are not acted on.
    let closing = false;
    const closeWith = (code: number, reason: string): void => {
      closing = true;
      ws.close(code, reason);
    };

    const fail = (code: WireErrorCode, message: string, seq?: number): void => {
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
      }
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
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
          opts.writer.write({ type: 'hello', agentId, frame, receivedAt }, () => {});
          // What it missed while it was away: asked while it was offline, or derived meanwhile.
          for (const command of opts.commandsOnHello?.(agentId, frame) ?? []) send(ws, { type: 'command', ...command });
          return;
        case 'heartbeat':
          metrics.outboxDepth.set(agentId, frame.outboxDepth);
          opts.writer.write({ type: 'heartbeat', agentId, outboxDepth: frame.outboxDepth, receivedAt }, () => {});
          return;
        case 'report':
          if (!helloDone) return fail('HELLO_REQUIRED', 'send hello before the first report', frame.seq);
          if (frame.outboxDepth !== undefined) metrics.outboxDepth.set(agentId, frame.outboxDepth);
          opts.writer.write({ type: 'report', agentId, frame, receivedAt }, (result) => {
            if (result instanceof Error) {
              send(ws, { type: 'error', code: 'INTERNAL', message: 'the report could not be stored; it will be accepted when sent again', seq: frame.seq });
              return;
            }
            const t = opts.now();
            metrics.observeIngestLatency((t.getTime() - receivedAt.getTime()) / 1000, t.getTime());
            if (result.type === 'report' && result.outcome === 'stored') metrics.countStored(1, t.getTime());
            else metrics.reportsDuplicate++;
            // Acked only now: the transaction holding it has committed.
            send(ws, { type: 'ack', seq: frame.seq });
          });
          return;
      }
    });
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
    close() {
      clearInterval(ping);
      for (const ws of sessions.values()) ws.terminate();
      sessions.clear();
      wss.close();
    },
  };
}
