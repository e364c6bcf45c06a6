// Change tickets an operator declares on a host before making a change (`quicksand-agent ticket
// CHG-123 --for 2h`): the agent's reports carry the ticket while it is in force, and rules may
// auto-approve ticketed changes inside a maintenance window. Pure.
import { z } from 'zod';

export const TICKET_SCHEMA = 'quicksand.ticket/v1';

/** A ticket id as change systems write them: `CHG-123`, `INC0012345`, `OPS-7`. */
export const ticketIdSchema = z
  .string()
  .min(1, 'a ticket id is required')
  .max(200, 'a ticket id is at most 200 characters')
  .regex(/^[^\s\p{Cc}](.*[^\s\p{Cc}])?$/u, 'a ticket id has no control characters and no leading or trailing space');

/** The declaration the agent keeps in its state folder while a ticket is in force. */
export const declaredTicketSchema = z
  .strictObject({
    schema: z.literal(TICKET_SCHEMA),
    id: ticketIdSchema,
    declaredAt: z.iso.datetime(),
    expiresAt: z.iso.datetime(),
  })
  .refine((t) => t.declaredAt < t.expiresAt, { message: 'expiresAt must be after declaredAt', path: ['expiresAt'] });
export type DeclaredTicket = z.infer<typeof declaredTicketSchema>;

/** The ticket id in force at `now`, or undefined (none declared, or expired). */
export function ticketInForce(ticket: DeclaredTicket | null, now: Date): string | undefined {
  if (ticket === null) return undefined;
  const t = now.getTime();
  return t >= Date.parse(ticket.declaredAt) && t < Date.parse(ticket.expiresAt) ? ticket.id : undefined;
}
