// What the console's pages share to answer a form: the dependencies, the acting user as the audit
// log names them, the message page, the role check, and a form's fields parsed by a schema.
import type { Context } from 'hono';
import { QuicksandError } from '../../shared/errors.js';
import type { ApiRoleName } from '../../shared/api.js';
import { formatIssues } from '../../shared/schema-errors.js';
import type { FetchLike } from '../alerts/http.js';
import type { SessionUser, Store } from '../store/types.js';
import { Layout } from './layout.js';
import { signedIn } from './session.js';
import type { SessionPolicy, WebEnv } from './session.js';

export interface ConsoleDeps {
  store: Store;
  clock: () => Date;
  policy?: SessionPolicy;
  stream?: { sendCommand(agentId: string, command: 'scan-now'): boolean; isConnected(agentId: string): boolean };
  /** How a sink's test alert is sent (default the global fetch). */
  fetch?: FetchLike;
}

/** The acting user, as the audit log names them. */
export const actor = (s: SessionUser) => ({ id: `user:${s.user}`, role: s.role, name: s.user });

/** The form's non-empty fields named in `keys`. */
export function fields(form: Record<string, string>, keys: readonly string[]): Record<string, string> {
  return Object.fromEntries(keys.filter((k) => (form[k] ?? '').trim() !== '').map((k) => [k, form[k]!]));
}

export function Message(props: { session: SessionUser | null; title: string; text: string }) {
  return <Layout title={props.title} session={props.session}><p class="error" role="alert">{props.text}</p></Layout>;
}

/** The session when its role is one of `roles`; else the login redirect, or the 403 page. */
export async function signedInAs(c: Context<WebEnv>, roles: readonly ApiRoleName[]): Promise<SessionUser | Response> {
  const s = signedIn(c);
  if (s instanceof Response || roles.includes(s.role)) return s;
  return c.html(<Message session={s} title="Forbidden" text={`This needs the role ${roles.join(' or ')}; you are ${s.role}.`} />, 403);
}

/** A form's value parsed by the API's schema; a refusal is BODY_INVALID naming the field. */
export function parseForm<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: Parameters<typeof formatIssues>[0] } }, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new QuicksandError('BODY_INVALID', formatIssues(r.error).replaceAll('\n', '; '));
  return r.data;
}

/** A user's mistake in a form (the message to show beside it), or null for anything else. */
export function formMistake(err: unknown): string | null {
  if (err instanceof QuicksandError && ['BODY_INVALID', 'QUERY_INVALID', 'USAGE', 'CONFLICT', 'NOT_FOUND', 'ALERT_SINK_INVALID', 'RULES_INVALID'].includes(err.code)) return err.message;
  return null;
}

/**
 * A schema refusal's lines (`source is not valid:\nurl: expected …`) by the field each names
 * (its first path segment), for the message beside that field; lines naming none under ''.
 */
export function errorsByField(message: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of message.split('\n').slice(1)) {
    const m = /^([A-Za-z_][\w]*)(?:[.[][^:]*)?: (.*)$/.exec(line);
    const key = m === null ? '' : m[1]!;
    out.set(key, [...(out.get(key) ?? []), line]);
  }
  return out;
}

/** The attributes that tie a field to the message that explains its refusal. */
export function invalidAttrs(errorId: string | null): Record<string, string> {
  return errorId === null ? {} : { 'aria-invalid': 'true', 'aria-describedby': errorId };
}
