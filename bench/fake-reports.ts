// Reports shaped like real ones: a full report of a host that drifted (a package install with its
// files, edited configs, an upgrade) and small event reports afterwards.
import { REPORT_SCHEMA, summarize } from '../shared/report.js';
import type { Finding, Report } from '../shared/report.js';

const sha = (n: number): string => n.toString(16).padStart(64, 'a');

export function fullReport(hostname: string): Report {
  const findings: Finding[] = [];
  const files: Finding[] = Array.from({ length: 30 }, (_, i) => ({
    kind: 'file-added',
    severity: 'high',
    path: `/usr/lib/x86_64-linux-gnu/netcat/plugin-${i}.so`,
    owner: { ecosystem: 'dpkg', name: 'netcat-openbsd' },
    after: sha(i),
  }));
  findings.push({ kind: 'package-added', severity: 'high', ecosystem: 'dpkg', name: 'netcat-openbsd', after: '1.219-1', changeSet: 'apt 2026-11-29 10:02:11', changes: files });
  for (let i = 0; i < 12; i++) findings.push({ kind: 'file-modified', severity: 'medium', path: `/etc/app/conf.d/${i}.conf`, before: sha(100 + i), after: sha(200 + i) });
  for (let i = 0; i < 6; i++) findings.push({ kind: 'package-changed', severity: 'high', ecosystem: 'dpkg', name: `libfoo${i}`, before: '1.2.3-1', after: '1.2.4-1' });
  findings.push({ kind: 'file-metadata', severity: 'critical', path: '/usr/bin/cat', owner: { ecosystem: 'dpkg', name: 'coreutils' }, before: { mode: '0755' }, after: { mode: '4755' }, reason: 'setuid/setgid bit added' });
  for (let i = 0; i < 8; i++) findings.push({ kind: 'file-modified', severity: 'info', path: `/etc/hostname${i === 0 ? '' : i}`, before: sha(300 + i), after: sha(400 + i) });
  return report(hostname, findings, 6141);
}

export function eventReport(hostname: string, n: number): Report {
  return report(hostname, [{ kind: 'file-modified', severity: 'medium', path: `/etc/app/conf.d/${n % 50}.conf`, before: sha(n), after: sha(n + 1) }], 1);
}

function report(hostname: string, findings: Finding[], files: number): Report {
  return {
    schema: REPORT_SCHEMA,
    image: { name: 'web', version: '42' },
    host: { hostname, root: '/' },
    scannedAt: new Date().toISOString(),
    summary: summarize(findings),
    stats: { files, packages: 88, bytesHashed: 123456789, durationMs: 1500 },
    findings,
    warnings: [],
  };
}
