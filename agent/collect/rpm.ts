import { copyFile, mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ExecFileOptions } from 'node:child_process';
import { Database } from '../sqlite.js';
import type { PackageRecord } from '../../shared/manifest.js';
import type { ScanWarning } from '../../shared/report.js';
import type { Root } from '../root.js';
import { isoSeconds, readOptional } from './read.js';
import type { ChangeSet, Collected, Collector, DigestAlgo, OwnedFile } from './types.js';

// Header tags (rpmtag.h) the agent reads.
export const TAG = {
  NAME: 1000,
  VERSION: 1001,
  RELEASE: 1002,
  EPOCH: 1003,
  INSTALLTIME: 1008,
  FILESIZES: 1028,
  FILEMODES: 1030,
  FILEDIGESTS: 1035,
  FILELINKTOS: 1036,
  FILEFLAGS: 1037,
  FILEUSERNAME: 1039,
  FILEGROUPNAME: 1040,
  ARCH: 1022,
  DIRINDEXES: 1116,
  BASENAMES: 1117,
  DIRNAMES: 1118,
  INSTALLTID: 1128,
  FILEDIGESTALGO: 5011,
} as const;

const TYPE = { CHAR: 1, INT8: 2, INT16: 3, INT32: 4, INT64: 5, STRING: 6, BIN: 7, STRING_ARRAY: 8, I18NSTRING: 9 } as const;
const RPMFILE_CONFIG = 1;
const RPMFILE_GHOST = 64;
// PGPHASHALGO numbers used by FILEDIGESTALGO; rpm assumes md5 when the tag is absent.
const DIGEST_ALGOS: Record<number, DigestAlgo> = { 1: 'md5', 2: 'sha1', 8: 'sha256', 9: 'sha384', 10: 'sha512' };

export type HeaderValue = string | string[] | number[] | Buffer;

/**
 * Parses one rpm header blob as rpmdb keeps it (no lead, no magic): big-endian index count and
 * data length, `il` 16-byte entries (tag, type, offset, count), then the data store. Every
 * offset is checked against the store, so a damaged blob is an error, never a wild read.
 */
export function parseRpmHeader(blob: Buffer): Map<number, HeaderValue> {
  if (blob.length < 8) throw new Error(`header is ${blob.length} bytes, shorter than its 8-byte preamble`);
  const il = blob.readUInt32BE(0);
  const dl = blob.readUInt32BE(4);
  const dataStart = 8 + il * 16;
  if (il > 0xffff || dataStart + dl > blob.length) throw new Error(`header claims ${il} entries and ${dl} data bytes but the blob has ${blob.length} bytes`);
  const data = blob.subarray(dataStart, dataStart + dl);
  const out = new Map<number, HeaderValue>();
  for (let i = 0; i < il; i++) {
    const e = 8 + i * 16;
    const tag = blob.readUInt32BE(e);
    const type = blob.readUInt32BE(e + 4);
    const offset = blob.readUInt32BE(e + 8);
    const count = blob.readUInt32BE(e + 12);
    if (offset > dl) throw new Error(`tag ${tag}: offset ${offset} beyond the ${dl}-byte data store`);
    out.set(tag, readValue(data, tag, type, offset, count));
  }
  return out;
}

function readValue(data: Buffer, tag: number, type: number, offset: number, count: number): HeaderValue {
  const need = (bytes: number): void => {
    if (offset + bytes > data.length) throw new Error(`tag ${tag}: ${count} values of type ${type} run past the data store`);
  };
  switch (type) {
    case TYPE.STRING:
      return readStrings(data, tag, offset, 1)[0]!;
    case TYPE.STRING_ARRAY:
    case TYPE.I18NSTRING:
      return readStrings(data, tag, offset, count);
    case TYPE.INT32: {
      need(count * 4);
      return Array.from({ length: count }, (_, i) => data.readUInt32BE(offset + i * 4));
    }
    case TYPE.INT16: {
      need(count * 2);
      return Array.from({ length: count }, (_, i) => data.readUInt16BE(offset + i * 2));
    }
    case TYPE.CHAR:
    case TYPE.INT8: {
      need(count);
      return Array.from(data.subarray(offset, offset + count));
    }
    case TYPE.INT64: {
      need(count * 8);
      return Array.from({ length: count }, (_, i) => Number(data.readBigUInt64BE(offset + i * 8)));
    }
    default:
      // BIN and region tags: raw bytes; the agent needs none of them.
      need(type === TYPE.BIN ? count : 0);
      return data.subarray(offset, offset + (type === TYPE.BIN ? count : 0));
  }
}

function readStrings(data: Buffer, tag: number, offset: number, count: number): string[] {
  if (count > data.length) throw new Error(`tag ${tag}: ${count} strings cannot fit in the data store`);
  const out: string[] = [];
  let at = offset;
  for (let i = 0; i < count; i++) {
    const end = data.indexOf(0, at);
    if (end === -1) throw new Error(`tag ${tag}: string ${i} is not terminated inside the data store`);
    out.push(data.toString('utf8', at, end));
    at = end + 1;
  }
  return out;
}

export interface RpmFile {
  path: string;
  digest?: { algo: DigestAlgo; hex: string };
  mode: number;
  config: boolean;
  user?: string;
  group?: string;
  linkTo?: string;
}

export interface RpmPackage {
  name: string;
  /** `[epoch:]version-release`, as rpm -q prints it with %{EVR}. */
  version: string;
  arch?: string;
  installTime?: number;
  installTid?: number;
  files: RpmFile[];
}

const str = (h: Map<number, HeaderValue>, tag: number): string | undefined => {
  const v = h.get(tag);
  return typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : undefined;
};
const nums = (h: Map<number, HeaderValue>, tag: number): number[] => {
  const v = h.get(tag);
  return Array.isArray(v) && typeof v[0] === 'number' ? (v as number[]) : [];
};
const strs = (h: Map<number, HeaderValue>, tag: number): string[] => {
  const v = h.get(tag);
  return Array.isArray(v) && (v.length === 0 || typeof v[0] === 'string') ? (v as string[]) : [];
};

/** The package a parsed header describes. Throws when the header has no name or version. */
export function rpmPackageFromHeader(h: Map<number, HeaderValue>): RpmPackage {
  const name = str(h, TAG.NAME);
  const version = str(h, TAG.VERSION);
  if (!name || !version) throw new Error('header has no NAME or VERSION');
  const release = str(h, TAG.RELEASE);
  const epoch = nums(h, TAG.EPOCH)[0];
  const basenames = strs(h, TAG.BASENAMES);
  const dirnames = strs(h, TAG.DIRNAMES);
  const dirindexes = nums(h, TAG.DIRINDEXES);
  const digests = strs(h, TAG.FILEDIGESTS);
  const modes = nums(h, TAG.FILEMODES);
  const flags = nums(h, TAG.FILEFLAGS);
  const algo = DIGEST_ALGOS[nums(h, TAG.FILEDIGESTALGO)[0] ?? 1];
  const users = strs(h, TAG.FILEUSERNAME);
  const groups = strs(h, TAG.FILEGROUPNAME);
  const links = strs(h, TAG.FILELINKTOS);
  const files: RpmFile[] = [];
  for (let i = 0; i < basenames.length; i++) {
    const dir = dirnames[dirindexes[i] ?? -1];
    if (dir === undefined) throw new Error(`file ${i} (${basenames[i]}) points at a missing DIRNAMES entry`);
    const flag = flags[i] ?? 0;
    const hex = digests[i];
    files.push({
      path: `${dir}${basenames[i]}`,
      mode: modes[i] ?? 0,
      config: (flag & RPMFILE_CONFIG) !== 0,
      ...(users[i] ? { user: users[i] } : {}),
      ...(groups[i] ? { group: groups[i] } : {}),
      ...(links[i] ? { linkTo: links[i] } : {}),
      // Ghost files are declared but never shipped: their content is not the package's to vouch for.
      ...(hex && algo && (flag & RPMFILE_GHOST) === 0 && /^[0-9a-f]+$/i.test(hex) ? { digest: { algo, hex: hex.toLowerCase() } } : {}),
    });
  }
  const arch = str(h, TAG.ARCH);
  const installTime = nums(h, TAG.INSTALLTIME)[0];
  const installTid = nums(h, TAG.INSTALLTID)[0];
  return {
    name,
    // rpm prints (none) for an unset epoch and leaves it out of the EVR.
    version: `${epoch !== undefined ? `${epoch}:` : ''}${version}${release ? `-${release}` : ''}`,
    files,
    ...(arch ? { arch } : {}),
    ...(installTime !== undefined ? { installTime } : {}),
    ...(installTid !== undefined ? { installTid } : {}),
  };
}

/** One change set per rpm transaction: every package of a transaction shares its INSTALLTID. */
export function rpmChangeSets(pkgs: readonly RpmPackage[]): ChangeSet[] {
  const byTid = new Map<number, RpmPackage[]>();
  for (const p of pkgs) {
    const tid = p.installTid ?? p.installTime;
    if (tid === undefined) continue;
    const group = byTid.get(tid) ?? [];
    group.push(p);
    byTid.set(tid, group);
  }
  return [...byTid.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([tid, group]) => {
      const times = group.map((p) => p.installTime ?? tid);
      return {
        id: `rpm:${tid}`,
        tool: 'rpm',
        start: isoSeconds(new Date(Math.min(...times) * 1000)),
        end: isoSeconds(new Date(Math.max(...times) * 1000)),
        events: group.map((p) => ({ ecosystem: 'rpm' as const, name: p.name, action: 'install' as const, after: p.version })),
      };
    });
}

// Where rpm keeps its database: RHEL 9 / Fedora first (var/lib/rpm then links to it).
const DB_DIRS = ['/usr/lib/sysimage/rpm', '/var/lib/rpm'];

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `use` on a private copy of `dir`'s regular files (`only` of them when given), then removes
 * the copy. No tool ever opens a database inside the audited root: sqlite creates `-shm` beside
 * a WAL-mode database, and rpm, given a database it cannot read, creates a new `rpmdb.sqlite`
 * (with `-shm` and `-wal`) there, which the next manifest would record as part of the image.
 */
async function withPrivateCopy<T>(dir: string, only: readonly string[] | null, use: (copy: string) => Promise<T>): Promise<T> {
  const copy = await mkdtemp(path.join(tmpdir(), 'quicksand-rpmdb-'));
  try {
    // Links are not followed: only what really is a file of the database folder is copied.
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (e.isFile() && (only === null || only.includes(e.name))) await copyFile(path.join(dir, e.name), path.join(copy, e.name));
    }
    return await use(copy);
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
}

/**
 * Reads every header blob of an sqlite rpmdb, from a private copy of the database and its WAL
 * (committed transactions not yet checkpointed live only in the WAL).
 */
export async function readSqliteBlobs(dbFile: string): Promise<Buffer[]> {
  const name = path.basename(dbFile);
  return withPrivateCopy(path.dirname(dbFile), [name, `${name}-wal`], async (copy) => {
    const db = new Database(path.join(copy, name), { fileMustExist: true });
    try {
      return db.prepare('SELECT blob FROM Packages ORDER BY hnum').pluck().all() as Buffer[];
    } finally {
      db.close();
    }
  });
}

// child_process (and node:net under it) loads only where an rpm database needs the rpm tool:
// a scan of any other host starts without it.
async function run(file: string, args: string[], opts: ExecFileOptions): Promise<{ stdout: string; stderr: string }> {
  const { execFile } = await import('node:child_process');
  return promisify(execFile)(file, args, { ...opts, encoding: 'utf8' });
}

// For BerkeleyDB/ndb databases: one line per package, one line per file, fields tab-separated.
export const QUERY_FORMAT =
  '@%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\t%{INSTALLTIME}\\t%{INSTALLTID}\\t%{FILEDIGESTALGO}\\n' +
  '[%{FILENAMES}\\t%{FILEDIGESTS}\\t%{FILEFLAGS}\\t%{FILEMODES}\\t%{FILEUSERNAME}\\t%{FILEGROUPNAME}\\t%{FILELINKTOS}\\n]';

/** Parses the output of `rpm -qa --qf QUERY_FORMAT`. */
export function parseRpmQueryOutput(text: string): RpmPackage[] {
  const out: RpmPackage[] = [];
  let current: RpmPackage | null = null;
  let algo: DigestAlgo | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const f = line.split('\t');
    if (line.startsWith('@')) {
      const [name, epoch, version, release, arch, itime, tid, dalgo] = [f[0]!.slice(1), ...f.slice(1)];
      const none = (v: string | undefined): string | undefined => (v === undefined || v === '(none)' ? undefined : v);
      algo = DIGEST_ALGOS[Number(none(dalgo) ?? 1)];
      current = {
        name: name!,
        version: `${none(epoch) ? `${epoch}:` : ''}${version}${none(release) ? `-${release}` : ''}`,
        files: [],
        ...(none(arch) ? { arch: arch! } : {}),
        ...(none(itime) ? { installTime: Number(itime) } : {}),
        ...(none(tid) ? { installTid: Number(tid) } : {}),
      };
      out.push(current);
    } else if (current && f[0]?.startsWith('/')) {
      const [file, hex, flags, mode, user, group, linkTo] = f;
      const flag = Number(flags ?? 0);
      current.files.push({
        path: file!,
        mode: Number(mode ?? 0),
        config: (flag & RPMFILE_CONFIG) !== 0,
        ...(user ? { user } : {}),
        ...(group ? { group } : {}),
        ...(linkTo ? { linkTo } : {}),
        ...(hex && algo && (flag & RPMFILE_GHOST) === 0 && /^[0-9a-f]+$/i.test(hex) ? { digest: { algo, hex: hex.toLowerCase() } } : {}),
      });
    }
  }
  return out;
}

async function findRpmBinary(): Promise<string | null> {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (dir && (await exists(path.join(dir, 'rpm')))) return path.join(dir, 'rpm');
  }
  return null;
}

// A damaged database must not hold a scan forever.
const RPM_QUERY_TIMEOUT_MS = 120_000;

/**
 * Asks the rpm binary for every package of the BerkeleyDB or ndb database in `dbDir` (on this
 * machine), through a private copy of it. Throws when rpm fails; `stderr` keeps what it said.
 */
export async function queryRpmDatabase(rpm: string, dbDir: string): Promise<{ packages: RpmPackage[]; stderr: string }> {
  return withPrivateCopy(dbDir, null, async (copy) => {
    const { stdout, stderr } = await run(rpm, ['--dbpath', copy, '-qa', '--qf', QUERY_FORMAT], { maxBuffer: 1 << 30, timeout: RPM_QUERY_TIMEOUT_MS });
    return { packages: parseRpmQueryOutput(stdout), stderr };
  });
}

// ndb's Packages.db starts with these four bytes (rpm's PKGDB_MAGIC).
const NDB_MAGIC = Buffer.from('RpmP');

/** Why rpm could answer nothing from a database that holds data: for the warning. */
async function unreadableReason(file: string, stderr: string): Promise<string> {
  const head = Buffer.alloc(4);
  await open(file, 'r')
    .then(async (fd) => fd.read(head, 0, 4, 0).finally(() => fd.close()))
    .catch(() => undefined);
  const said = stderr.split('\n').find((l) => l.startsWith('error:'));
  if (head.equals(NDB_MAGIC)) return `it is an ndb database, which this machine's rpm cannot read${said ? ` (${said})` : ''}`;
  return `it is damaged or in a format this machine's rpm cannot read${said ? ` (${said})` : ''}`;
}

/** `name:x:id:...` lines of the root's own etc/passwd or etc/group → name → id. */
export function parseIdFile(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [name, , id] = line.split(':');
    if (name && id && /^\d+$/.test(id) && !out.has(name)) out.set(name, Number(id));
  }
  return out;
}

interface IdMaps {
  users: Map<string, number>;
  groups: Map<string, number>;
}

function toCollected(pkgs: RpmPackage[], root: Root, warnings: ScanWarning[], ids: IdMaps): Collected {
  const packages: PackageRecord[] = [];
  const owned = new Map<string, OwnedFile>();
  for (const p of pkgs) {
    packages.push({ ecosystem: 'rpm', name: p.name, version: p.version, ...(p.arch ? { arch: p.arch } : {}) });
    const owner = { ecosystem: 'rpm' as const, name: p.name };
    for (const f of p.files) {
      const canonical = root.canonical(f.path);
      // Folders are shared by many packages; the first one keeps them.
      if (owned.has(canonical)) continue;
      // Only regular files: a folder's mode is shared by every package that lists it.
      const mode = (f.mode & 0o170000) === 0o100000 ? (f.mode & 0o7777).toString(8).padStart(4, '0') : undefined;
      // Names resolve through the root's own passwd/group, not this machine's.
      const uid = f.user !== undefined ? ids.users.get(f.user) : undefined;
      const gid = f.group !== undefined ? ids.groups.get(f.group) : undefined;
      const target = (f.mode & 0o170000) === 0o120000 ? f.linkTo : undefined;
      owned.set(canonical, {
        owner,
        conffile: f.config,
        ...(f.digest ? { digest: f.digest } : {}),
        ...(mode ? { mode } : {}),
        ...(uid !== undefined ? { uid } : {}),
        ...(gid !== undefined ? { gid } : {}),
        ...(target ? { target } : {}),
      });
    }
  }
  return { packages, owned, warnings, changeSets: rpmChangeSets(pkgs) };
}

async function readIds(root: Root): Promise<IdMaps> {
  const read = async (file: string): Promise<string> => (await readOptional(root.hostPath(file)).catch(() => null)) ?? '';
  return { users: parseIdFile(await read('/etc/passwd')), groups: parseIdFile(await read('/etc/group')) };
}

export const rpmCollector: Collector = {
  ecosystem: 'rpm',
  async collect(root: Root): Promise<Collected | null> {
    for (const dbDir of DB_DIRS) {
      const sqlite = root.hostPath(`${dbDir}/rpmdb.sqlite`);
      if (await exists(sqlite)) {
        // Read with the database (readSqliteBlobs): named here so the package cache sees it change.
        root.hostPath(`${dbDir}/rpmdb.sqlite-wal`);
        const warnings: ScanWarning[] = [];
        const pkgs: RpmPackage[] = [];
        let blobs: Buffer[];
        try {
          blobs = await readSqliteBlobs(sqlite);
        } catch (err) {
          return { packages: [], owned: new Map(), warnings: [{ code: 'RPMDB_UNREADABLE', path: `${dbDir}/rpmdb.sqlite`, message: `cannot read the rpm database: ${(err as Error).message}` }] };
        }
        blobs.forEach((blob, i) => {
          try {
            pkgs.push(rpmPackageFromHeader(parseRpmHeader(blob)));
          } catch (err) {
            warnings.push({ code: 'RPMDB_HEADER_INVALID', path: `${dbDir}/rpmdb.sqlite`, message: `package header ${i + 1}: ${(err as Error).message}` });
          }
        });
        return toCollected(pkgs, root, warnings, await readIds(root));
      }
      const legacyName = (await exists(root.hostPath(`${dbDir}/Packages`))) ? 'Packages' : (await exists(root.hostPath(`${dbDir}/Packages.db`))) ? 'Packages.db' : null;
      if (legacyName === null) continue;
      const dbFile = `${dbDir}/${legacyName}`;
      const rpm = await findRpmBinary();
      if (rpm === null) {
        return { uncacheable: true, packages: [], owned: new Map(), warnings: [{ code: 'RPMDB_UNSUPPORTED', path: dbDir, message: 'unsupported rpm database (BerkeleyDB or ndb) and no rpm binary to read it: rpm packages not checked' }] };
      }
      let answer: { packages: RpmPackage[]; stderr: string };
      try {
        answer = await queryRpmDatabase(rpm, root.hostPath(dbDir));
      } catch (err) {
        return { uncacheable: true, packages: [], owned: new Map(), warnings: [{ code: 'RPMDB_UNSUPPORTED', path: dbDir, message: `unsupported rpm database: ${rpm} could not read it (${(err as Error).message.split('\n')[0]})` }] };
      }
      // rpm exits 0 with nothing to say for a database it cannot make sense of: no package from a
      // file that holds data is an unreadable database, not an image without rpm packages.
      const size = (await stat(root.hostPath(dbFile))).size;
      if (answer.packages.length === 0 && size > 0) {
        const why = await unreadableReason(root.hostPath(dbFile), answer.stderr);
        return { uncacheable: true, packages: [], owned: new Map(), warnings: [{ code: 'RPMDB_UNREADABLE', path: dbFile, message: `${rpm} read no package from this ${size}-byte database: ${why}; rpm packages not checked` }] };
      }
      // The rpm tool reads every file of the folder: not one the package cache could watch.
      return { ...toCollected(answer.packages, root, [], await readIds(root)), uncacheable: true };
    }
    return null;
  },
};
