// The agent's side of the stream: connects with its token, says hello, sends the outbox in order
// and deletes an entry when the server acks it. Reconnects forever with jitter and backoff; with
// several server URLs, each connection goes to the next of them in random order.
import WebSocket from 'ws';
import { MAX_FRAME_BYTES, PROTOCOL_VERSION, STREAM_PATH, parseServerFrame } from '../../shared/protocol.js';
import type { AgentConfig, CommandFrame, HelloFrame } from '../../shared/protocol.js';
import { DEFAULT_BACKOFF, reconnectDelay } from './backoff.js';
import type { BackoffOptions } from './backoff.js';
import type { Outbox, OutboxEntry } from './outbox.js';
import { serverRotation, serverUrls } from './servers.js';

export interface TransportOptions {
  config: AgentConfig;
  outbox: Outbox;
  host: HelloFrame['host'];
  image: HelloFrame['image'];
  /** Labels this agent declares for its host (`run --label`); absent: the server keeps what it knew. */
  labels?: HelloFrame['labels'];
  /** The server baseline version this agent scans against now, said in every hello. */
  baseline?: () => number | undefined;
  onCommand?: (command: CommandFrame) => void;
  /** One line per notable event (connected, refused, lost); the daemon logs them. */
  log?: (line: string) => void;
  /** A refusal that retrying cannot fix (401): the token is wrong or revoked. */
  onRefused?: (status: number, message: string) => void;
  /** Once for each report in flight that an ack covers (one ack frame may cover several), lowest first. */
  onAck?: (seq: number) => void;
  backoff?: BackoffOptions;
  heartbeatMs?: number;
  /** Reports in flight (sent, not yet acked) at a time. */
  window?: number;
  random?: () => number;
}

export interface Transport {
  start(): void;
  /** A new entry is in the outbox: send it if connected. */
  notify(): void;
  stop(): Promise<void>;
  readonly connected: boolean;
  /** The server of the current connection (or of the last one tried). */
  readonly server: string;
}

export function streamUrl(server: string): string {
  return `${server.replace(/^http/, 'ws').replace(/\/+$/, '')}${STREAM_PATH}`;
}

export function createTransport(opts: TransportOptions): Transport {
  const log = opts.log ?? (() => {});
  const backoff = opts.backoff ?? DEFAULT_BACKOFF;
  const random = opts.random ?? Math.random;
  const windowSize = opts.window ?? 32;
  let ws: WebSocket | null = null;
  let open = false;
  let stopped = true;
  // Failed connections since the last one that opened: the backoff grows once per round of URLs.
  let failures = 0;
  const urls = serverUrls(opts.config);
  const rotation = serverRotation(urls, random);
  /** The server of the current (or last) connection. */
  let server = urls[0]!;
  let retryTimer: NodeJS.Timeout | null = null;
  let heartbeat: NodeJS.Timeout | null = null;
  // Highest seq sent on this connection; a new connection starts again from the outbox's head.
  let sentThrough = 0;
  const inflight = new Set<number>();

  function frameFor(e: OutboxEntry, depth: number): string {
    // The body is spliced in as stored: it is the exact text the chain hash was computed over.
    const head = { type: 'report', agentId: opts.config.agentId, seq: e.seq, prevHash: e.prevHash, hash: e.hash, kind: e.kind, outboxDepth: depth };
    return `${JSON.stringify(head).slice(0, -1)},"report":${e.body}}`;
  }

  function pump(): void {
    if (!open || ws === null) return;
    const room = windowSize - inflight.size;
    if (room <= 0) return;
    const entries = opts.outbox.pending(sentThrough, room);
    if (entries.length === 0) return;
    const depth = opts.outbox.depth();
    for (const e of entries) {
      const frame = frameFor(e, depth);
      if (Buffer.byteLength(frame) > MAX_FRAME_BYTES) log(`report ${e.seq} is ${Buffer.byteLength(frame)} bytes, over the server's frame limit; it will be refused`);
      ws.send(frame);
      inflight.add(e.seq);
      sentThrough = e.seq;
    }
  }

  function scheduleReconnect(atLeastMs = 0): void {
    if (stopped || retryTimer !== null) return;
    const delay = reconnectDelay(Math.floor(failures++ / urls.length), backoff, random, atLeastMs);
    retryTimer = setTimeout(() => {
      retryTimer = null;
      connect();
    }, delay);
  }

  function connect(): void {
    if (stopped) return;
    server = rotation.next();
    const socket = new WebSocket(streamUrl(server), {
      headers: { authorization: `Bearer ${opts.config.token}` },
      handshakeTimeout: 15_000,
      maxPayload: 1024 * 1024,
      perMessageDeflate: false,
    });
    ws = socket;
    let retryAfterMs = 0;
    socket.on('unexpected-response', (_req, res) => {
      const retryAfter = Number(res.headers['retry-after']);
      if (Number.isFinite(retryAfter) && retryAfter > 0) retryAfterMs = retryAfter * 1000;
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => {
        log(`${server} refused the stream: ${res.statusCode} ${body.slice(0, 200)}`);
        if (res.statusCode === 401) opts.onRefused?.(401, body);
        socket.terminate();
      });
      res.on('error', () => socket.terminate());
    });
    socket.on('open', () => {
      open = true;
      failures = 0;
      sentThrough = 0;
      inflight.clear();
      log(`connected to ${server}`);
      const hello: HelloFrame = {
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        agentId: opts.config.agentId,
        host: opts.host,
        image: opts.image,
        lastAckedSeq: opts.outbox.lastAckedSeq(),
        outboxDepth: opts.outbox.depth(),
        ...(opts.labels === undefined ? {} : { labels: opts.labels }),
      };
      const baseline = opts.baseline?.();
      if (baseline !== undefined) hello.baseline = baseline;
      socket.send(JSON.stringify(hello));
      pump();
      heartbeat = setInterval(() => {
        if (open) socket.send(JSON.stringify({ type: 'heartbeat', outboxDepth: opts.outbox.depth() }));
      }, opts.heartbeatMs ?? 30_000);
    });
    socket.on('message', (data, isBinary) => {
      if (isBinary) return;
      const parsed = parseServerFrame(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8'));
      if (!parsed.ok) {
        log(`ignored a frame from the server: ${parsed.message}`);
        return;
      }
      const frame = parsed.frame;
      switch (frame.type) {
        case 'ack': {
          // Cumulative: the server acks once per batch it stored, naming the highest seq.
          opts.outbox.ack(frame.seq);
          const covered = [...inflight].filter((s) => s <= frame.seq).sort((a, b) => a - b);
          for (const s of covered) {
            inflight.delete(s);
            opts.onAck?.(s);
          }
          pump();
          return;
        }
        case 'command':
          opts.onCommand?.(frame);
          return;
        case 'error':
          log(`server error ${frame.code}${frame.seq !== undefined ? ` for report ${frame.seq}` : ''}: ${frame.message}`);
          // A report the server could not take: start again from the outbox head later.
          if (frame.seq !== undefined) socket.close(1000, 'resending');
          return;
      }
    });
    socket.on('error', (err) => {
      if (!open) log(`cannot connect to ${server}: ${err.message}`);
    });
    socket.on('close', (code) => {
      if (open) log(`connection to ${server} lost (${code}); reconnecting${urls.length > 1 ? ' to another server' : ''}`);
      open = false;
      if (heartbeat !== null) clearInterval(heartbeat);
      heartbeat = null;
      inflight.clear();
      if (ws === socket) ws = null;
      scheduleReconnect(retryAfterMs);
    });
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      connect();
    },
    notify: pump,
    async stop() {
      stopped = true;
      if (retryTimer !== null) clearTimeout(retryTimer);
      retryTimer = null;
      const socket = ws;
      if (socket === null) return;
      await new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.close(1000, 'agent stopping');
        setTimeout(() => {
          socket.terminate();
          resolve();
        }, 2000).unref();
      });
    },
    get connected() {
      return open;
    },
    get server() {
      return server;
    },
  };
}
