// A raw agent-stream client for the wire tests: plays good and bad agents against a real server.
import WebSocket from 'ws';
import { STREAM_PATH, parseServerFrame } from '../../shared/protocol.js';
import type { ServerFrame } from '../../shared/protocol.js';

export type Attempt = { status: number; retryAfter?: string; body: string } | { status: 101; client: Client };

export interface Client {
  ws: WebSocket;
  frames: ServerFrame[];
  closed: Promise<number>;
  next(match: (f: ServerFrame) => boolean, timeoutMs?: number): Promise<ServerFrame>;
}

/** One upgrade attempt; `localAddress` picks the source address (any of 127.0.0.0/8). */
export function connectStream(serverUrl: string, token: string | null, opts: { localAddress?: string } = {}): Promise<Attempt> {
  const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
  const ws = new WebSocket(`${serverUrl.replace('http', 'ws')}${STREAM_PATH}`, { headers, ...opts });
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, body });
        ws.terminate();
      });
    });
    ws.on('error', (err) => reject(err));
    ws.on('open', () => {
      const frames: ServerFrame[] = [];
      const waiters: { match: (f: ServerFrame) => boolean; resolve: (f: ServerFrame) => void }[] = [];
      ws.on('message', (data) => {
        const parsed = parseServerFrame(data.toString());
        if (!parsed.ok) throw new Error(`server sent an invalid frame: ${parsed.message}`);
        frames.push(parsed.frame);
        for (const w of [...waiters]) if (w.match(parsed.frame)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(parsed.frame);
        }
      });
      const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
      const client: Client = {
        ws,
        frames,
        closed,
        next: (match, timeoutMs = 5000) => {
          const seen = frames.find(match);
          if (seen !== undefined) return Promise.resolve(seen);
          return new Promise((res, rej) => {
            waiters.push({ match, resolve: res });
            setTimeout(() => rej(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(frames).slice(0, 2000)}`)), timeoutMs).unref();
          });
        },
      };
      resolve({ status: 101, client });
    });
  });
}

/** An upgrade that must succeed. */
export async function openStream(serverUrl: string, token: string, opts: { localAddress?: string } = {}): Promise<Client> {
  const a = await connectStream(serverUrl, token, opts);
  if (a.status !== 101 || !('client' in a)) throw new Error(`expected an upgrade, got ${a.status}: ${'body' in a ? a.body : ''}`);
  return a.client;
}
