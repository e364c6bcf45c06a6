import { SEVERITIES } from '../../shared/findings.js';
import type { Finding, Report } from '../../shared/report.js';

const NESTED_SHOWN = 5;
const WARNINGS_SHOWN = 10;

/** The report as a person reads it in a terminal: verdict, counts, findings grouped by severity. Pure. */
export function formatReport(report: Report, manifestName: string): string {
  const { summary, stats } = report;
  const lines: string[] = [];
  const verdict = summary.status === 'clean' ? 'CLEAN: matches its image' : 'DRIFT: this host no longer matches its image';
  lines.push(`${report.host.root} against ${report.image.name} ${report.image.version} (${manifestName})`);
  lines.push(verdict);
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
    detail = ` ${Object.entries(f.before).map(([k, v]) => `${k} ${v} -> ${after[k]}`).join(', ')}`;
  }
  return `${kind} ${f.path}${owner}${detail}${f.reason ? `: ${f.reason}` : ''}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function formatBytes(n: number): string {
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
