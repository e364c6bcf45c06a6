import type { Finding } from '../../shared/report.js';
import type { HostRecords, Session } from '../collect/host-records.js';

export type Actor = NonNullable<Finding['actor']>;

/** A sudo command that does not name the path counts only this close before the change. */
const NEARBY_MS = 60_000;
/** One that names it, this long before (an editor left open). */
const NAMED_MS = 24 * 3600_000;

/**
 * The likely actor of a change made at `changedAt` (the file's ctime) to `path`: the login
 * session that was open then, and the last sudo command before it that names the path (or, if
 * none does, one run within a minute before). Evidence with its source, never certainty; none
 * when no record matches. Pure.
 */
export function likelyActor(path: string, changedAt: number, records: HostRecords): Actor | undefined {
  const session = latest(records.sessions.filter((s) => s.start <= changedAt && (s.end === undefined || changedAt <= s.end)), (s) => s.start);
  // sudo logs before it runs the command, in whole seconds: allow the second the change falls in.
  const before = records.sudo.filter((e) => e.at <= changedAt + 1000);
  const named = latest(before.filter((e) => changedAt - e.at <= NAMED_MS && namesPath(e.command, path)), (e) => e.at);
  // A nearby command counts only when it names no other path (a root shell, `sudo -i`): one
  // that names another file was about that file.
  const sudo = named ?? latest(before.filter((e) => changedAt - e.at <= NEARBY_MS && !namesOtherPath(e.command)), (e) => e.at);
  if (!session && !sudo) return undefined;
  const evidence: Actor['evidence'] = [{ source: 'ctime', at: iso(changedAt), text: `changed at ${clock(changedAt)}` }];
  if (session) evidence.push({ source: session.source, at: iso(session.start), text: sessionText(session) });
  if (sudo) evidence.push({ source: sudo.source, at: iso(sudo.at), text: `at ${clock(sudo.at)} ${sudo.user} ran \`sudo ${sudo.command}\`${sudo.tty ? ` on ${sudo.tty}` : ''}` });
  const user = sudo?.user ?? session?.user;
  return { ...(user ? { user } : {}), evidence };
}

/** One line for people: the evidence in order, each with its source. */
export function actorText(actor: Actor): string {
  return actor.evidence.map((e) => (e.source === 'ctime' ? e.text : `${e.text} (${e.source})`)).join('; ');
}

function sessionText(s: Session): string {
  return `during ${s.user}'s session on ${s.line}${s.host ? ` from ${s.host}` : ''} (since ${clock(s.start)})`;
}

function namesPath(command: string, path: string): boolean {
  return command.split(/\s+/).some((word) => word === path || word.endsWith(`=${path}`));
}

function namesOtherPath(command: string): boolean {
  return command.split(/\s+/).slice(1).some((word) => word.startsWith('/'));
}

function latest<T>(items: readonly T[], at: (t: T) => number): T | undefined {
  let best: T | undefined;
  for (const item of items) if (best === undefined || at(item) >= at(best)) best = item;
  return best;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Local wall-clock time, as the host's own logs show it. */
function clock(ms: number): string {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}
