import type { PackageRecord } from '../../shared/manifest.js';
import type { ScanWarning } from '../../shared/report.js';
import type { Root } from '../root.js';
import { readDpkgChangeSets } from './dpkg-log.js';
import { capMessages, readChecked, readOptional } from './read.js';
import { applyDiversions, parseDiversions } from './dpkg-divert.js';
import type { Collected, Collector, OwnedFile } from './types.js';

export interface DpkgStanza {
  fields: Map<string, string>;
  /** 1-based line of the stanza's first field, for messages. */
  line: number;
}

/** A problem in a status file, for a warning: `line` is 1-based. */
export type StatusProblem = (line: number, message: string) => void;

/**
 * Parses `var/lib/dpkg/status` (RFC-822-like stanzas). A continuation line starts with a space
 * or tab and is appended to the previous field with a newline, as dpkg itself keeps it. Lines
 * that are not fields go to `problem`, and so does a last stanza without the blank line dpkg
 * ends every stanza with: the file was cut short there.
 */
export function parseDpkgStatus(text: string, problem: StatusProblem = () => {}): DpkgStanza[] {
  const stanzas: DpkgStanza[] = [];
  let fields = new Map<string, string>();
  let line = 0;
  let start = 0;
  let last: string | null = null;
  for (const raw of text.split('\n')) {
    line++;
    if (raw.trim() === '') {
      if (fields.size > 0) stanzas.push({ fields, line: start });
      fields = new Map();
      last = null;
      continue;
    }
    if (raw.startsWith(' ') || raw.startsWith('\t')) {
      if (last !== null) fields.set(last, `${fields.get(last) ?? ''}\n${raw.slice(1)}`);
      else problem(line, 'continuation line without a field before it');
      continue;
    }
    const colon = raw.indexOf(':');
    if (colon <= 0) {
      problem(line, 'not a "Field: value" line'); // dpkg would refuse the file; we keep reading
      continue;
    }
    if (fields.size === 0) start = line;
    last = raw.slice(0, colon);
    fields.set(last, raw.slice(colon + 1).trim());
  }
  if (fields.size > 0) stanzas.push({ fields, line: start });
  const final = stanzas.at(-1);
  if (final && !text.slice(-4096).replace(/[ \t\r]+$/, '').endsWith('\n\n')) {
    const name = final.fields.get('Package');
    problem(final.line, `the file ends inside the stanza ${name ? `of ${name} ` : ''}that starts here: it was cut short, that stanza may be incomplete`);
  }
  return stanzas;
}

// The third word of `Status:`; these states have the package's files on disk.
const PRESENT_STATES = new Set(['installed', 'half-configured', 'unpacked', 'triggers-awaited', 'triggers-pending']);
// Every word dpkg writes in `Status: <want> <flag> <state>`.
const WANTS = new Set(['unknown', 'install', 'hold', 'deinstall', 'purge']);
const FLAGS = new Set(['ok', 'reinstreq']);
const STATES = new Set([...PRESENT_STATES, 'not-installed', 'config-files', 'half-installed']);

export interface DpkgPackage {
  name: string;
  version: string;
  arch: string;
  multiArchSame: boolean;
  /** Conffile path → md5 hex as dpkg recorded it at install time. */
  conffiles: Map<string, string>;
}

/** The packages whose files are on disk. A stanza that cannot be one (no name, a Status dpkg never writes, no version) goes to `problem`. */
export function installedPackages(stanzas: DpkgStanza[], problem: StatusProblem = () => {}): DpkgPackage[] {
  const out: DpkgPackage[] = [];
  for (const s of stanzas) {
    const name = s.fields.get('Package');
    const statusText = s.fields.get('Status');
    const status = statusText?.split(/\s+/);
    const version = s.fields.get('Version');
    if (!name) {
      problem(s.line, 'stanza without a Package field: skipped');
      continue;
    }
    if (!status || status.length !== 3 || !WANTS.has(status[0]!) || !FLAGS.has(status[1]!) || !STATES.has(status[2]!)) {
      problem(s.line, `${name}: ${statusText === undefined ? 'no Status field' : `unrecognised Status ${JSON.stringify(statusText.slice(0, 60))}`}: skipped`);
      continue;
    }
    if (!PRESENT_STATES.has(status[2]!)) continue;
    if (!version) {
      problem(s.line, `${name} is ${status[2]} but has no Version field: skipped`);
      continue;
    }
    out.push({
      name,
      version,
      arch: s.fields.get('Architecture') ?? 'all',
      multiArchSame: s.fields.get('Multi-Arch') === 'same',
      conffiles: parseConffiles(s.fields.get('Conffiles') ?? ''),
    });
  }
  return out;
}

/**
 * The installed packages of a status file's text, and its problems as `<source>:<line>: ...`
 * messages. A status with content and not one installed package is unreadable, not empty.
 */
export function readDpkgStatus(text: string, source: string): { packages: DpkgPackage[]; errors: string[]; unreadable: boolean } {
  const problems: Array<{ line: number; message: string }> = [];
  const problem: StatusProblem = (line, message) => problems.push({ line, message });
  const packages = installedPackages(parseDpkgStatus(text, problem), problem);
  // In file order: the first problems are the ones a capped warning list shows.
  const errors = problems.sort((a, b) => a.line - b.line).map((p) => `${source}:${p.line}: ${p.message}`);
  return { packages, errors, unreadable: packages.length === 0 && text.trim() !== '' };
}

/** `Conffiles:` continuation lines: ` /etc/adduser.conf <md5> [obsolete|remove-on-upgrade]`. */
export function parseConffiles(value: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of value.split('\n')) {
    const [path, md5] = line.trim().split(/\s+/);
    if (path?.startsWith('/') && md5 && /^[0-9a-f]{32}$/.test(md5)) out.set(path, md5);
  }
  return out;
}

/** `info/<pkg>.md5sums`: `<32 hex>  <path without leading />`. */
export function parseMd5sums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{32}) [ *]?(.+)$/.exec(line);
    if (m) out.set(`/${m[2]!.replace(/^\/+/, '')}`, m[1]!);
  }
  return out;
}

/** `info/<pkg>.list`: absolute paths, one a line; `/.` is the root itself. */
export function parseList(text: string): string[] {
  return text.split('\n').filter((p) => p.startsWith('/') && p !== '/.');
}

/** One package's `.list` and `.md5sums`, each null when absent, with why one that is there could not be read. */
async function readInfoFiles(info: (file: string) => string, pkg: DpkgPackage): Promise<{ list: string | null; listFile: string; listError?: string; sums: string | null; sumsError?: string }> {
  // Multi-Arch: same packages keep `<pkg>:<arch>.list`; the rest plain `<pkg>.list`.
  const base = pkg.multiArchSame ? `${pkg.name}:${pkg.arch}` : pkg.name;
  const [first, sums] = await Promise.all([readChecked(info(`${base}.list`)), readChecked(info(`${base}.md5sums`))]);
  let listFile = `${base}.list`;
  let list = first;
  if (list.text === null && list.error === undefined) {
    listFile = `${pkg.name}:${pkg.arch}.list`;
    list = await readChecked(info(listFile));
  }
  return {
    list: list.text,
    listFile,
    ...(list.error !== undefined ? { listError: list.error } : {}),
    sums: sums.text,
    ...(sums.error !== undefined ? { sumsError: sums.error } : {}),
  };
}

const STATUS = '/var/lib/dpkg/status';
const INFO = '/var/lib/dpkg/info';

export const dpkgCollector: Collector = {
  ecosystem: 'dpkg',
  async collect(root: Root): Promise<Collected | null> {
    const status = await readChecked(root.hostPath(STATUS));
    if (status.text === null && status.error === undefined) return null;
    const warnings: ScanWarning[] = [];
    const packages: PackageRecord[] = [];
    const owned = new Map<string, OwnedFile>();
    if (status.text === null) {
      warnings.push({ code: 'DPKG_STATUS_UNREADABLE', path: STATUS, message: `cannot read dpkg's status (${status.error}): dpkg packages not checked` });
      return { packages, owned, warnings };
    }
    const parsed = readDpkgStatus(status.text, STATUS);
    for (const message of capMessages(parsed.errors)) warnings.push({ code: 'DPKG_STATUS_INVALID', path: STATUS, message });
    if (parsed.unreadable) {
      warnings.push({ code: 'DPKG_STATUS_UNREADABLE', path: STATUS, message: `no installed package could be read from ${status.text.length} bytes: dpkg packages not checked` });
    }
    // Each info file through hostPath: in a container's layers they need not share one folder.
    const info = (file: string): string => root.hostPath(`${INFO}/${file}`);
    const installed = parsed.packages;
    // The info files are read first (read.ts: synchronously), then merged in status order so
    // the first package listing a shared folder still keeps it.
    const files = await Promise.all(installed.map((pkg) => readInfoFiles(info, pkg)));
    const changeSets = readDpkgChangeSets(root);
    const diversions = readOptional(root.hostPath('/var/lib/dpkg/diversions'));
    installed.forEach((pkg, i) => {
      const { list, listFile, listError, sums, sumsError } = files[i]!;
      packages.push({ ecosystem: 'dpkg', name: pkg.name, version: pkg.version, arch: pkg.arch });
      const owner = { ecosystem: 'dpkg' as const, name: pkg.name };
      if (sumsError !== undefined) {
        warnings.push({ code: 'DPKG_MD5SUMS_UNREADABLE', path: `${INFO}/${pkg.name}.md5sums`, message: `cannot read ${pkg.name}'s file digests (${sumsError}): its files are owned but not verified` });
      }
      if (listError !== undefined) {
        warnings.push({ code: 'DPKG_LIST_UNREADABLE', path: `${INFO}/${listFile}`, message: `cannot read ${pkg.name}'s file list (${listError}): its files are not attributed` });
        return;
      }
      if (list === null) {
        warnings.push({ code: 'DPKG_LIST_MISSING', path: `${INFO}/${pkg.name}.list`, message: `dpkg lists ${pkg.name} as installed but has no file list for it` });
        return;
      }
      const md5 = parseMd5sums(sums ?? '');
      for (const listed of parseList(list)) {
        const path = root.canonical(listed);
        const conf = pkg.conffiles.get(listed);
        const sum = conf ?? md5.get(listed);
        // A folder is listed by every package that puts something in it; the first one keeps it.
        if (owned.has(path)) continue;
        owned.set(path, { owner, conffile: conf !== undefined, ...(sum ? { digest: { algo: 'md5', hex: sum } } : {}) });
      }
    });
    applyDiversions(owned, parseDiversions((await diversions) ?? ''), root);
    return { packages, owned, warnings, changeSets: await changeSets };
  },
};
