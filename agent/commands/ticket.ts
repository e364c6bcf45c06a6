// `quicksand-agent ticket`: declare the change ticket of the changes about to be made on this host.
import path from 'node:path';
import { parseDuration, formatDuration } from '../../shared/duration.js';
import { QuicksandError } from '../../shared/errors.js';
import { TICKET_SCHEMA, ticketIdSchema, ticketInForce } from '../../shared/ticket.js';
import type { OptionValues } from '../../shared/command-line.js';
import { readDeclaredTicket, writeDeclaredTicket } from '../deliver/ticket.js';
import { COMMON, DEFAULT_STATE_DIR, EXIT_CLEAN, noArguments } from './common.js';
import type { CliIo } from './common.js';

export const help = `Usage: quicksand-agent ticket ID --for DURATION [--state DIR]
       quicksand-agent ticket --clear [--state DIR]
       quicksand-agent ticket [--state DIR]

Declares the change ticket of the changes you are about to make on this host. For
DURATION, every report the agent sends (the daemon's and scan --send's) carries the
ticket on its findings, and a server rule can auto-approve ticketed changes made
inside a declared maintenance window, recording the ticket. A change the server saw
before the ticket was declared keeps no ticket: declare first, then change.
Without an id, prints the ticket in force.

Options:
  --for DURATION        how long the changes take: 30m, 2h, 1h30m (at most 7d)
  --clear               withdraw the ticket now
  --state DIR           the agent's state folder (default: ${DEFAULT_STATE_DIR}); the
                        running daemon reads the ticket from it

Example:
  quicksand-agent ticket CHG-4711 --for 2h && apt-get install -y nginx
`;

export const options = { ...COMMON, for: { type: 'string' }, clear: { type: 'boolean' }, state: { type: 'string' } } as const;

// The only command that takes an argument: the ticket id.
export async function run(values: OptionValues, positionals: string[], io: CliIo): Promise<number> {
  noArguments(positionals, 1);
  const v = values as TicketArgs & { state?: string };
  await ticketCommand(positionals[0], v, path.resolve(v.state ?? DEFAULT_STATE_DIR), new Date(), io.stdout);
  return EXIT_CLEAN;
}

export interface TicketArgs {
  for?: string;
  clear?: boolean;
}

/** Declares (ID --for DURATION), withdraws (--clear) or shows (no argument) the ticket. */
export async function ticketCommand(id: string | undefined, args: TicketArgs, state: string, now: Date, out: (text: string) => void): Promise<void> {
  if (args.clear) {
    if (id !== undefined || args.for !== undefined) throw new QuicksandError('USAGE', '--clear takes no ticket id and no --for');
    await writeDeclaredTicket(state, null);
    out('no change ticket declared any more; reports carry none\n');
    return;
  }
  if (id === undefined) {
    if (args.for !== undefined) throw new QuicksandError('USAGE', 'expected a ticket id before --for, like `ticket CHG-123 --for 2h`');
    const declared = readDeclaredTicket(state);
    const active = ticketInForce(declared, now);
    out(active !== undefined && declared !== null ? `change ticket ${active} in force until ${declared.expiresAt}\n` : 'no change ticket in force\n');
    return;
  }
  const parsed = ticketIdSchema.safeParse(id);
  if (!parsed.success) throw new QuicksandError('USAGE', `ticket id "${id}": ${parsed.error.issues[0]!.message}`);
  if (args.for === undefined) throw new QuicksandError('USAGE', '--for DURATION is required: how long the changes under this ticket take, like --for 2h');
  const ms = parseDuration(args.for);
  // A ticket covers a maintenance's worth of changes, not a standing licence to drift.
  if (ms === null || ms > 7 * 86_400_000) throw new QuicksandError('USAGE', `--for: expected a duration up to 7d like 30m, 2h or 1h30m, got "${args.for}"`);
  const expiresAt = new Date(now.getTime() + ms);
  await writeDeclaredTicket(state, { schema: TICKET_SCHEMA, id: parsed.data, declaredAt: now.toISOString(), expiresAt: expiresAt.toISOString() });
  out(`change ticket ${parsed.data} declared for ${formatDuration(ms)}, until ${expiresAt.toISOString()}: changes reported meanwhile carry it\n`);
}
