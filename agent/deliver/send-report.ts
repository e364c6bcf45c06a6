// `scan --send`'s delivery: one report through the outbox to the server, waiting for its ack.
import { QuicksandError } from '../../shared/errors.js';
import type { AgentConfig } from '../../shared/protocol.js';
import type { Report } from '../../shared/report.js';
import { openStateDb } from '../state-db.js';
import { createOutbox } from './outbox.js';
import type { Outbox } from './outbox.js';
import { currentTicket, stampTicket } from './ticket.js';
import { createTransport } from './transport.js';
import { serverUrls } from './servers.js';
import { hostFacts } from './version.js';

/**
 * `scan --send`: puts the report in the outbox and delivers everything waiting there; returns
 * once the server has acked this report. On timeout the report stays queued for the next run.
 */
export async function sendReport(report: Report, opts: { state: string; config: AgentConfig; timeoutMs: number; image: { name: string; version: string } }, io: { stderr: (text: string) => void }): Promise<void> {
  const { config } = opts;
  const db = openStateDb(opts.state);
  try {
    const outbox: Outbox = createOutbox(db);
    const entry = outbox.enqueue(stampTicket(report, currentTicket(opts.state, new Date(), (line) => io.stderr(`${line}\n`))), 'full', new Date());
    let refused: string | null = null;
    let done!: () => void;
    const delivered = new Promise<void>((resolve) => (done = resolve));
    const transport = createTransport({
      config,
      outbox,
      host: await hostFacts(),
      image: opts.image,
      backoff: { firstMaxMs: 200, baseMs: 500, capMs: 5_000 },
      log: (line) => io.stderr(`${line}\n`),
      onRefused: (status, body) => {
        refused = `${status} ${body}`;
        done();
      },
      onAck: () => {
        // Earlier reports of a previous offline run go first; this one is delivered when no
        // entry up to its seq is left.
        const head = outbox.pending(0, 1)[0];
        if (head === undefined || head.seq > entry.seq) done();
      },
    });
    transport.start();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      delivered.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), opts.timeoutMs))),
    ]);
    clearTimeout(timer);
    await transport.stop();
    if (refused !== null) {
      const revoked = (refused as string).includes('AGENT_TOKEN_REVOKED');
      throw new QuicksandError(revoked ? 'AGENT_TOKEN_REVOKED' : 'AGENT_TOKEN_INVALID', `${transport.server} refused this agent's token (${revoked ? 'revoked' : 'unknown'}); enrol again with \`quicksand-agent enroll --force\`. Report ${entry.seq} stays in the outbox.`);
    }
    if (timedOut) {
      throw new QuicksandError('DELIVERY_TIMEOUT', `${serverUrls(config).join(', ')} did not acknowledge report ${entry.seq} within ${opts.timeoutMs / 1000} s; it stays in the outbox (${outbox.depth()} waiting) and goes with the next delivery`);
    }
    io.stderr(`report ${entry.seq} delivered to ${transport.server}\n`);
  } finally {
    db.close();
  }
}
