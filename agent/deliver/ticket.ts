// The change ticket declared on this host, kept in the state folder as `ticket.json` (written by
// `quicksand-agent ticket`, read by the daemon and `scan --send` for every report they queue).
import { readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { QuicksandError } from '../../shared/errors.js';
import type { Report } from '../../shared/report.js';
import { formatIssues } from '../../shared/schema-errors.js';
import { declaredTicketSchema, ticketInForce } from '../../shared/ticket.js';
import type { DeclaredTicket } from '../../shared/ticket.js';

export const TICKET_FILE = 'ticket.json';

/** The declaration in `state`, or null when there is none. A damaged file is an error. */
export function readDeclaredTicket(state: string): DeclaredTicket | null {
  const file = path.join(state, TICKET_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new QuicksandError('CONFIG_INVALID', `cannot read ${file}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new QuicksandError('CONFIG_INVALID', `${file} is not valid JSON: declare the ticket again with \`quicksand-agent ticket ID --for DURATION\``);
  }
  const result = declaredTicketSchema.safeParse(value);
  if (!result.success) throw new QuicksandError('CONFIG_INVALID', `${file} is not a valid ticket declaration:\n${formatIssues(result.error)}`);
  return result.data;
}

/** Written atomically and readable by the service user: root declares, the daemon reads. */
export async function writeDeclaredTicket(state: string, ticket: DeclaredTicket | null): Promise<void> {
  const file = path.join(state, TICKET_FILE);
  try {
    if (ticket === null) return await rm(file, { force: true });
    await mkdir(state, { recursive: true, mode: 0o700 });
    const tmp = `${file}.tmp-${process.pid}`;
    await writeFile(tmp, `${JSON.stringify(ticket, null, 2)}\n`, { mode: 0o644 });
    await rename(tmp, file);
  } catch (err) {
    throw new QuicksandError('STATE_DIR_UNUSABLE', `cannot write ${file}: ${(err as Error).message}; run as root or pass --state DIR`);
  }
}

/**
 * The ticket id in force now, for the reports being queued. Never throws: a damaged declaration
 * must not stop reporting; it is logged and the report simply carries no ticket.
 */
export function currentTicket(state: string, now: Date, log: (line: string) => void): string | undefined {
  try {
    return ticketInForce(readDeclaredTicket(state), now);
  } catch (err) {
    log(`change ticket ignored: ${(err as Error).message}`);
    return undefined;
  }
}

/** The report with `ticket` on its top-level findings and change sets. Pure. */
export function stampTicket(report: Report, ticket: string | undefined): Report {
  if (ticket === undefined) return report;
  return {
    ...report,
    findings: report.findings.map((f) => ({ ...f, ticket })),
    ...(report.changeSets === undefined ? {} : { changeSets: report.changeSets.map((cs) => ({ ...cs, ticket })) }),
  };
}
