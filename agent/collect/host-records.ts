// The host's own records of who did what, read relative to the root, without auditd: sudo's log
// lines and login sessions from wtmp. Evidence for a hand edit, never proof (diff/actor.ts).
import { readFile } from 'node:fs/promises';
import type { Root } from '../root.js';

/** One command run through sudo, as sudo logged it. `at`: epoch ms. */
export interface SudoEntry {
  at: number;
  user: string;
  command: string;
  tty?: string;
  source: string;
}

/** One login session from wtmp; `end` absent while it lasts. Epoch ms. */
export interface Session {
  user: string;
  line: string;
  host: string;
  start: number;
  end?: number;
  source: string;
}

export interface HostRecords {
  sudo: SudoEntry[];
  sessions: Session[];
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
// `Dec  1 20:22:23 ` (syslog, sudo's own logfile: local time, no year) or an RFC 3339 stamp.
const STAMP = /^(?:([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)|(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)))/;
// After the stamp: `host sudo[123]:   alice : ...` (syslog) or ` : alice : ...` (sudo's logfile).
const SUDO_TAIL = /^\s+(?:\S+ sudo(?:\[\d+\])?:\s+|: )([^\s:]+) : (.*)$/;

/**
 * Parses sudo's log lines: its own logfile (`Defaults logfile=`; long lines continue indented by
 * four spaces) or syslog's auth.log / secure. Times without a year are taken in the local time
 * zone, in the year of `now` or, when that would be in the future, the year before. Pure.
 */
export function parseSudoLog(text: string, source: string, now: Date): SudoEntry[] {
  const lines: string[] = [];
  for (const raw of text.split('\n').slice(0, 1_000_000)) {
    if (raw.startsWith('    ') && lines.length > 0) lines[lines.length - 1] += ` ${raw.trim()}`;
    else lines.push(raw);
  }
  const out: SudoEntry[] = [];
  for (const line of lines) {
    const stamp = STAMP.exec(line);
    if (!stamp) continue;
    const tail = SUDO_TAIL.exec(line.slice(stamp[0].length));
    if (!tail) continue;
    // `user NOT in sudoers ; ...`, `3 incorrect password attempts ; ...`: refused, nothing ran.
    if (!/^[A-Z]+=/.test(tail[2]!)) continue;
    const fields = new Map(tail[2]!.split(' ; ').map((kv) => [kv.slice(0, kv.indexOf('=')).trim(), kv.slice(kv.indexOf('=') + 1)]));
    const command = fields.get('COMMAND');
    if (command === undefined) continue;
    const at = stamp[6] !== undefined ? Date.parse(stamp[6]) : localTime(stamp, now);
    if (Number.isNaN(at)) continue;
    const tty = fields.get('TTY');
    out.push({ at, user: tail[1]!.slice(0, 64), command: command.slice(0, 512), ...(tty && tty !== 'unknown' ? { tty } : {}), source });
  }
  return out;
}

function localTime(m: RegExpExecArray, now: Date): number {
  const month = MONTHS.indexOf(m[1]!);
  if (month < 0) return NaN;
  const at = (year: number): number => new Date(year, month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])).getTime();
  const guess = at(now.getFullYear());
  return guess > now.getTime() + 86_400_000 ? at(now.getFullYear() - 1) : guess;
}

// struct utmp (glibc, x86-64 and others with 32-bit time in utmp): 384 bytes.
const UTMP_SIZE = 384;
const USER_PROCESS = 7;
const DEAD_PROCESS = 8;
const BOOT_TIME = 2;

/** Login sessions from wtmp records, oldest first: a USER_PROCESS opens one on its line, a DEAD_PROCESS there or a boot ends it. Pure. */
export function parseWtmp(bytes: Buffer, source: string): Session[] {
  const out: Session[] = [];
  const open = new Map<string, Session>();
  const text = (at: number, len: number): string => {
    const raw = bytes.subarray(at, at + len);
    const nul = raw.indexOf(0);
    return raw.subarray(0, nul === -1 ? len : nul).toString('utf8');
  };
  for (let off = 0; off + UTMP_SIZE <= bytes.length && out.length < 100_000; off += UTMP_SIZE) {
    const type = bytes.readInt32LE(off);
    const line = text(off + 8, 32);
    const at = bytes.readInt32LE(off + 340) * 1000 + Math.floor(bytes.readInt32LE(off + 344) / 1000);
    if (type === USER_PROCESS) {
      const session: Session = { user: text(off + 44, 32), line, host: text(off + 76, 256), start: at, source };
      const previous = open.get(line); // a new login on a line ends what was open there
      if (previous && previous.end === undefined) previous.end = at;
      open.set(line, session);
      out.push(session);
    } else if (type === DEAD_PROCESS) {
      const s = open.get(line);
      if (s) s.end = at;
      open.delete(line);
    } else if (type === BOOT_TIME) {
      for (const s of open.values()) s.end = at;
      open.clear();
    }
  }
  return out;
}

const SUDO_LOGS = ['/var/log/sudo.log', '/var/log/auth.log', '/var/log/secure'];
const WTMP = ['/var/log/wtmp.1', '/var/log/wtmp'];
const MAX_BYTES = 64 * 1024 * 1024;

/** Reads what the root holds of these records; absent or unreadable ones simply give none. */
export async function readHostRecords(root: Root, now: Date): Promise<HostRecords> {
  const read = async (p: string): Promise<Buffer | null> => {
    try {
      const bytes = await readFile(root.hostPath(p));
      return bytes.length > MAX_BYTES ? bytes.subarray(bytes.length - MAX_BYTES) : bytes;
    } catch {
      return null;
    }
  };
  const [logs, wtmps] = await Promise.all([Promise.all(SUDO_LOGS.map(read)), Promise.all(WTMP.map(read))]);
  return {
    sudo: logs.flatMap((b, i) => (b ? parseSudoLog(b.toString('utf8'), SUDO_LOGS[i]!, now) : [])),
    sessions: wtmps.flatMap((b, i) => (b ? parseWtmp(b, WTMP[i]!) : [])),
  };
}
