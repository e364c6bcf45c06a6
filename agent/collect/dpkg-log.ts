import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type { Root } from '../root.js';
import type { ChangeSet, PackageEvent } from './types.js';
import { compareTimes } from './types.js';

/** `2026-11-29  21:58:33` or `2026-11-29 21:58:33` → `2026-11-29T21:58:33` (local time, as logged). */
function logTime(date: string, time: string): string {
  return `${date}T${time}`;
}

// `Install: a:amd64 (1.0), b:amd64 (2.0, automatic)`; Upgrade entries carry `(old, new)`.
const APT_ENTRY = /([^\s,()]+) \(([^)]*)\)/g;

function stripArch(pkg: string): string {
  const colon = pkg.indexOf(':');
  return colon === -1 ? pkg : pkg.slice(0, colon);
}

/**
 * Parses apt's `history.log`: one stanza per apt command (`Start-Date`, `Commandline`,
 * `Requested-By`, `Install`/`Upgrade`/`Downgrade`/`Reinstall`/`Remove`/`Purge`, `End-Date`).
 * Each command is one change set.
 */
export function parseAptHistory(text: string): ChangeSet[] {
  const out: ChangeSet[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of stanza.split('\n')) {
      const colon = line.indexOf(': ');
      if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 2).trim());
    }
    const start = /^(\d{4}-\d{2}-\d{2})\s+(\d{2}:\d{2}:\d{2})$/.exec(fields.get('Start-Date') ?? '');
    if (!start) continue;
    const end = /^(\d{4}-\d{2}-\d{2})\s+(\d{2}:\d{2}:\d{2})$/.exec(fields.get('End-Date') ?? '');
    const events: PackageEvent[] = [];
    for (const [field, action] of [['Install', 'install'], ['Reinstall', 'change'], ['Upgrade', 'change'], ['Downgrade', 'change'], ['Remove', 'remove'], ['Purge', 'remove']] as const) {
      for (const m of (fields.get(field) ?? '').matchAll(APT_ENTRY)) {
        const versions = m[2]!.split(',').map((v) => v.trim()).filter((v) => v !== 'automatic');
        const name = stripArch(m[1]!);
        if (action === 'install') events.push({ ecosystem: 'dpkg', name, action, ...(versions[0] ? { after: versions[0] } : {}) });
        else if (action === 'remove') events.push({ ecosystem: 'dpkg', name, action, ...(versions[0] ? { before: versions[0] } : {}) });
        else if (versions.length >= 2) events.push({ ecosystem: 'dpkg', name, action, before: versions[0]!, after: versions[1]! });
        else events.push({ ecosystem: 'dpkg', name, action, ...(versions[0] ? { after: versions[0] } : {}) });
      }
    }
    const startIso = logTime(start[1]!, start[2]!);
    const command = fields.get('Commandline');
    const user = fields.get('Requested-By');
    out.push({
      id: `apt:${startIso}`,
      tool: 'apt',
      start: startIso,
      ...(end ? { end: logTime(end[1]!, end[2]!) } : {}),
      ...(command ? { command } : {}),
      ...(user ? { user } : {}),
      events,
    });
  }
  return out;
}

/**
 * Parses `dpkg.log` into one change set per dpkg run: a run starts with a `startup` line
 * (`startup archives unpack`, `startup packages remove|configure`). `dpkg -i x.deb` done by
 * hand appears only here, not in apt's history.
 */
export function parseDpkgLog(text: string): ChangeSet[] {
  const out: ChangeSet[] = [];
  let current: ChangeSet | null = null;
  for (const line of text.split('\n')) {
    const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) (\S+) (.*)$/.exec(line);
    if (!m) continue;
    const at = logTime(m[1]!, m[2]!);
    const verb = m[3]!;
    const rest = m[4]!.split(' ');
    if (verb === 'startup') {
      // configure runs right after unpack in one dpkg invocation by apt; keep them together.
      if (current && rest[0] === 'packages' && rest[1] === 'configure') continue;
      current = null;
      continue;
    }
    if (verb !== 'install' && verb !== 'upgrade' && verb !== 'remove' && verb !== 'purge') continue;
    const [pkg, before, after] = rest;
    if (!pkg) continue;
    if (!current) {
      current = { id: `dpkg:${at}`, tool: 'dpkg', start: at, end: at, events: [] };
      out.push(current);
    }
    current.end = at;
    const name = stripArch(pkg);
    const has = (v: string | undefined): v is string => v !== undefined && v !== '<none>';
    if (verb === 'install') current.events.push({ ecosystem: 'dpkg', name, action: 'install', ...(has(after) ? { after } : {}) });
    else if (verb === 'upgrade') current.events.push({ ecosystem: 'dpkg', name, action: 'change', ...(has(before) ? { before } : {}), ...(has(after) ? { after } : {}) });
    else current.events.push({ ecosystem: 'dpkg', name, action: 'remove', ...(has(before) ? { before } : {}) });
  }
  return out;
}

/**
 * apt's commands first; a dpkg run that happened inside an apt command's time window is that
 * command's work (apt drives dpkg), so only dpkg runs outside every window stay. Oldest first.
 */
export function mergeDpkgChangeSets(apt: ChangeSet[], dpkg: ChangeSet[]): ChangeSet[] {
  const inside = (at: string | undefined): boolean => at !== undefined && apt.some((a) => a.start !== undefined && a.start <= at && at <= (a.end ?? a.start));
  const merged = [...apt, ...dpkg.filter((d) => !inside(d.start))];
  return merged.sort((a, b) => compareTimes(a.start, b.start));
}

/**
 * The most a gzipped rotation may inflate to (a busy host's weekly dpkg.log is a few MiB): a
 * crafted `.gz` in /var/log is then a skipped rotation, not an agent that runs out of memory.
 */
export const ROTATED_LOG_MAX_BYTES = 64 * 1024 * 1024;

/**
 * A log and its rotations (`.1`, `.2.gz`, ...), oldest first; gzipped ones are unpacked. Read
 * synchronously (see read.ts): of the 19 names tried most are absent, each a round trip.
 */
async function readRotated(root: Root, file: string): Promise<string> {
  const parts: string[] = [];
  for (let i = 9; i >= 0; i--) {
    for (const name of i === 0 ? [file] : [`${file}.${i}`, `${file}.${i}.gz`]) {
      try {
        const bytes = readFileSync(root.hostPath(name));
        parts.push((name.endsWith('.gz') ? gunzipSync(bytes, { maxOutputLength: ROTATED_LOG_MAX_BYTES }) : bytes).toString('utf8'));
      } catch {
        // absent, damaged or oversized rotation: the remaining logs still explain what they can
      }
    }
  }
  return parts.join('\n');
}

/** dpkg's change sets from the host's own logs. Logs may be missing (cleaned images): then none. */
export async function readDpkgChangeSets(root: Root): Promise<ChangeSet[]> {
  const [history, dpkg] = await Promise.all([readRotated(root, '/var/log/apt/history.log'), readRotated(root, '/var/log/dpkg.log')]);
  return mergeDpkgChangeSets(parseAptHistory(history), parseDpkgLog(dpkg));
}
