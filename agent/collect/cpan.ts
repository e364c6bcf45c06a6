import path from 'node:path';
import type { PackageRecord } from '../../shared/manifest.js';
import type { ScanWarning } from '../../shared/report.js';
import type { Root } from '../root.js';
import { listInside, packageId, readChecked } from './read.js';
import type { ChangeSet, Collected, Collector, OwnedFile } from './types.js';
import { compareTimes } from './types.js';

export interface PerllocalEntry {
  module: string;
  version?: string;
  /** The date as perl wrote it (`scalar localtime`: the host's local time). */
  date: string;
  installedInto?: string;
  line: number;
}

/**
 * Parses perllocal.pod: `=head2 <date>: C<Module> L<Qs::Fix|Qs::Fix>` followed by `C<key: value>`
 * items. Each `make install` appends a stanza, so a module installed twice appears twice.
 */
export function parsePerllocal(text: string): PerllocalEntry[] {
  const out: PerllocalEntry[] = [];
  let current: PerllocalEntry | null = null;
  text.split('\n').forEach((line, i) => {
    const head = /^=head2 (.+?): C<[^>]*> L<([^|>]+)\|[^>]*>/.exec(line);
    if (head) {
      current = { module: head[2]!.trim(), date: head[1]!.trim(), line: i + 1 };
      out.push(current);
      return;
    }
    const item = /^C<([A-Za-z_ ]+): (.*)>\s*$/.exec(line.trim());
    if (item && current) {
      if (item[1] === 'VERSION') current.version = item[2]!.trim();
      else if (item[1] === 'installed into') current.installedInto = item[2]!.trim();
    }
  });
  return out;
}

/** `.packlist`: absolute paths, one a line, optionally followed by ` key=value` attributes. */
export function parsePacklist(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\/\S.*?)(?:\s+\w+=\S*)*\s*$/.exec(line);
    if (m) out.push(path.posix.normalize(m[1]!));
  }
  return out;
}

/** `Sun Nov 29 22:40:03 2026` → `2026-11-29T22:40:03` (still local time, like dpkg's log). */
export function perlDateToIso(date: string): string | undefined {
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const m = /^\w{3} (\w{3}) +(\d{1,2}) (\d{2}:\d{2}:\d{2}) (\d{4})$/.exec(date);
  const month = m ? months.indexOf(m[1]!) : -1;
  if (!m || month < 0) return undefined;
  return `${m[4]}-${String(month + 1).padStart(2, '0')}-${m[2]!.padStart(2, '0')}T${m[3]}`;
}

// Perl's architecture-dependent library folders, where perllocal.pod and auto/**/.packlist live.
const SEARCH = ['/usr/local/lib', '/usr/local/lib64', '/usr/lib64/perl5', '/usr/local/lib/perl5', '/usr/local/share/perl5', '/opt'];
const SKIP = new Set(['site-packages', 'dist-packages', 'node_modules', 'python3', 'gems']);

async function findPerllocal(root: Root): Promise<string[]> {
  const found: string[] = [];
  // Shallow, bounded search: perllocal.pod sits a few levels below these folders.
  const stack = SEARCH.map((d) => ({ dir: d, depth: 0 }));
  while (stack.length > 0) {
    const { dir, depth } = stack.pop()!;
    for (const e of await listInside(root, dir)) {
      if (e.isFile() && e.name === 'perllocal.pod') found.push(`${dir}/${e.name}`);
      else if (e.isDirectory() && depth < 4 && !SKIP.has(e.name) && e.name !== 'auto') stack.push({ dir: `${dir}/${e.name}`, depth: depth + 1 });
    }
  }
  return [...new Set(found)];
}

export const cpanCollector: Collector = {
  ecosystem: 'cpan',
  async collect(root: Root): Promise<Collected | null> {
    const pods = await findPerllocal(root);
    if (pods.length === 0) return null;
    const warnings: ScanWarning[] = [];
    const latest = new Map<string, PerllocalEntry & { pod: string }>();
    for (const pod of pods) {
      const read = await readChecked(root.hostPath(pod));
      if (read.error !== undefined) warnings.push({ code: 'PERLLOCAL_UNREADABLE', path: pod, message: `cannot read the install log (${read.error}): the modules it lists are not checked` });
      const text = read.text;
      const entries = parsePerllocal(text ?? '');
      if (text && entries.length === 0 && text.trim() !== '') warnings.push({ code: 'PERLLOCAL_INVALID', path: pod, message: 'no "=head2 <date>: C<Module> L<Name|Name>" stanza found' });
      // The last stanza of a module is its current install.
      for (const e of entries) latest.set(e.module, { ...e, pod });
    }
    const packages: PackageRecord[] = [];
    const owned = new Map<string, OwnedFile>();
    const records = new Map<string, string>();
    const changeSets: ChangeSet[] = [];
    const sorted = [...latest.values()].sort((a, b) => compareTimes(perlDateToIso(a.date), perlDateToIso(b.date)));
    for (const e of sorted) {
      const owner = { ecosystem: 'cpan' as const, name: e.module };
      const version = e.version ?? '0';
      packages.push({ ecosystem: 'cpan', name: e.module, version });
      const packlist = `${path.posix.dirname(e.pod)}/auto/${e.module.split('::').join('/')}/.packlist`;
      const { text: list, error } = await readChecked(root.hostPath(packlist));
      if (error !== undefined) warnings.push({ code: 'PACKLIST_UNREADABLE', path: packlist, message: `cannot read ${e.module}'s .packlist (${error}): its files are not attributed` });
      else if (list === null) warnings.push({ code: 'PACKLIST_MISSING', path: packlist, message: `perllocal.pod lists ${e.module} but it has no .packlist: its files are not attributed` });
      else {
        records.set(packageId(owner), root.canonical(packlist));
        for (const p of [...parsePacklist(list), packlist]) {
          const c = root.canonical(p);
          if (!owned.has(c)) owned.set(c, { owner, conffile: false });
        }
      }
      // perllocal.pod is every install's shared log: the most recent install explains its change.
      owned.set(root.canonical(e.pod), { owner, conffile: false });
      const start = perlDateToIso(e.date);
      changeSets.push({ id: `cpan:${start ?? e.date}:${e.module}`, tool: 'cpan', ...(start ? { start, end: start } : {}), events: [{ ecosystem: 'cpan', name: e.module, action: 'install', after: version }] });
    }
    return { packages, owned, warnings, records, changeSets };
  },
};
