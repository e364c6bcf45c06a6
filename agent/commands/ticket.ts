// `quicksand-agent ticket`: declare the change ticket of the changes about to be made on this host.
import { parseDuration, formatDuration } from '../../shared/duration.js';
import { QuicksandError } from '../../shared/errors.js';
import { TICKET_SCHEMA, ticketIdSchema, ticketInForce } from '../../shared/ticket.js';
import { readDeclaredTicket, writeDeclaredTicket } from '../deliver/ticket.js';

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
