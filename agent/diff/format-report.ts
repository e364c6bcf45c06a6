import { SEVERITIES } from '../../shared/findings.js';
import type { Finding, Report } from '../../shared/report.js';
import { DATABASE_UNREADABLE_CODES } from '../collect/types.js';
import { actorText } from './actor.js';

const NESTED_SHOWN = 5;
const WARNINGS_SHOWN = 10;

/** The report as a person reads it in a terminal: verdict, counts, findings grouped by severity. Pure. */
export function formatReport(report: Report, manifestName: string): string {
  const { summary, stats } = report;
  const lines: string[] = [];
  const unread = report.warnings.filter((w) => DATABASE_UNREADABLE_CODES.has(w.code));
  const verdict =
    summary.status === 'drift'
      ? 'DRIFT: this host no longer matches its image'
      : unread.length > 0
        ? `INCOMPLETE: no drift found, but ${plural(unread.length, 'package database')} could not be read and ${unread.length === 1 ? 'its' : 'their'} packages were not checked`
        : 'CLEAN: matches its image';
  lines.push(`${report.host.root} against ${report.image.name} ${report.image.version} (${manifestName})`);
  lines.push(verdict);
  // Said at the top, not only among the warnings: a scan that could not read a database must not read as clean.
  for (const w of unread) lines.push(`  not checked: ${w.code} ${w.path ?? ''}: ${w.message}`);
  const counts = SEVERITIES.map((s) => `${summary.counts[s]} ${s}`).join(', ');
  const sets = summary.changeSets ?? summary.findings;
  lines.push(`  ${counts}  (${plural(sets, 'change')}: ${plural(summary.findings, 'finding')} covering ${plural(summary.files, 'path')})`);
  const causes = new Map((report.changeSets ?? []).map((cs) => [cs.id, cs]));
  for (const severity of SEVERITIES) {
    const group = report.findings.filter((f) => f.severity === severity);
    if (group.length === 0) continue;
    lines.push('', severity.toUpperCase());
    for (const f of group) {
      const cs = f.changeSet !== undefined ? causes.get(f.changeSet) : undefined;
      lines.push(`  ${describe(f)}${cs ? `  <- ${cs.tool}${cs.start ? ` ${cs.start}` : ''}${cs.command ? `: ${cs.command}` : ''}` : ''}`);
      if (f.actor) lines.push(`      likely actor${f.actor.user ? ` ${f.actor.user}` : ''} (evidence, not proof): ${actorText(f.actor)}`);
      const nested = f.changes ?? [];
      for (const c of nested.slice(0, NESTED_SHOWN)) lines.push(`      ${describe(c)}`);
      if (nested.length > NESTED_SHOWN) lines.push(`      ... and ${nested.length - NESTED_SHOWN} more (--json lists them all)`);
    }
  }
  if (report.containers !== undefined) lines.push('', ...formatContainers(report.containers));
  lines.push('', `Scanned ${plural(stats.files, 'path')} and ${plural(stats.packages, 'package')} (${formatBytes(stats.bytesHashed)} hashed) in ${(stats.durationMs / 1000).toFixed(1)} s.`);
  if (report.warnings.length > 0) {
    lines.push(`${plural(report.warnings.length, 'warning')} (paths that could not be fully checked):`);
    for (const w of report.warnings.slice(0, WARNINGS_SHOWN)) lines.push(`  ${w.code} ${w.path ?? ''}: ${w.message}`);
    if (report.warnings.length > WARNINGS_SHOWN) lines.push(`  ... and ${report.warnings.length - WARNINGS_SHOWN} more (--json lists them all)`);
  }
  return `${lines.join('\n')}\n`;
}

/** One line per container (its verdict against its own image), then its most severe findings. */
function formatContainers(containers: NonNullable<Report['containers']>): string[] {
  const lines = [`CONTAINERS (${containers.length})`];
  for (const c of containers) {
    const verdict = c.state === 'gone' ? 'gone' : c.state === 'unknown' ? 'not read' : c.summary.status === 'clean' ? 'clean' : 'DRIFT';
    const counts = SEVERITIES.filter((s) => c.summary.counts[s] > 0).map((s) => `${c.summary.counts[s]} ${s}`).join(', ');
    lines.push(`  ${c.runtime} ${c.name ?? c.id.slice(0, 12)} (${c.image.ref ?? c.image.id ?? 'image unknown'}, ${c.state}): ${verdict}${counts ? `  ${counts}` : ''}`);
    for (const f of c.findings.slice(0, NESTED_SHOWN)) lines.push(`      ${describe(f)}`);
    if (c.findings.length > NESTED_SHOWN) lines.push(`      ... and ${c.findings.length - NESTED_SHOWN} more (--json lists them all)`);
  }
  return lines;
}

function describe(f: Finding): string {
  const kind = f.kind.padEnd(15);
  if (f.path === undefined) {
    const versions = f.kind === 'package-changed' ? `${String(f.before)} -> ${String(f.after)}` : String(f.after ?? f.before ?? '');
    const files = f.changes?.length ? ` (${plural(f.changes.length, 'path')})` : '';
    return `${kind} ${f.ecosystem ?? ''} ${f.name ?? ''} ${versions}${files}`;
  }
  const owner = f.owner ? ` [${f.owner.ecosystem} ${f.owner.name}]` : '';
  let detail = '';
  if (f.kind === 'file-metadata' && typeof f.before === 'object' && typeof f.after === 'object') {
    const after = f.after;
    const shown = (v: string | number | undefined): string | number => (v === '' || v === undefined ? 'none' : v);
    detail = ` ${Object.entries(f.before).map(([k, v]) => `${k} ${shown(v)} -> ${shown(after[k])}`).join(', ')}`;
  }
  const attack = f.attack ? `  [ATT&CK ${f.attack.id} ${f.attack.name}]` : '';
  return `${kind} ${f.path}${owner}${detail}${f.reason ? `: ${f.reason}` : ''}${attack}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function formatBytes(n: number): string {
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
