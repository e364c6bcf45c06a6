import { createHash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, fstatSync, openSync, readSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { pipeline as pipe } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { constants as zlibConstants, createGunzip, createGzip, gunzip, gunzipSync } from 'node:zlib';
import { QuicksandError } from '../../shared/errors.js';
import { FILE_TYPES, MANIFEST_SCHEMA, MAX_MANIFEST_PACKAGES } from '../../shared/manifest-format.js';
import { LIMITS } from '../../shared/limits.js';
import { ECOSYSTEMS } from '../../shared/findings.js';
import { MAX_CONFIG_TEXT_CHARS, TEXT_OMISSIONS } from '../../shared/config-text.js';
import type { FileRecord, Manifest } from '../../shared/manifest.js';
import { formatIssues } from '../../shared/schema-errors.js';
import { comparePaths, compareRecordPaths } from '../fingerprint/walk.js';
import { readManifestFile } from './io.js';

/** Everything of a manifest but its file records. */
export type ManifestHeader = Omit<Manifest, 'files'>;

/**
 * A manifest whose file records come as a stream, in walk order (`compareRecordPaths`), so a scan
 * can merge them with the walk without holding either side whole.
 */
export interface ManifestSource {
  header: ManifestHeader;
  records(): AsyncIterable<FileRecord[]>;
  /** The same records, each parsed only when asked: a scan leaves the lines of paths known clean unparsed. */
  batches(): AsyncIterable<RecordBatch>;
  /** The sha256 of the manifest file's bytes, when it is a file: what verdicts remembered against it name. */
  identity?(): string | undefined;
}

/**
 * Records of a manifest in walk order: `path` and `rawPath` place one, `record` gives it whole.
 * `record` answers undefined when the record is of an unusual shape and the schema must be
 * loaded first: `await loadRecordSchema()`, then ask again.
 */
export interface RecordBatch {
  readonly length: number;
  path(i: number): string;
  rawPath(i: number): string | undefined;
  record(i: number): FileRecord | undefined;
}

/** A batch of records already in memory. */
class ParsedBatch implements RecordBatch {
  constructor(private readonly records: readonly FileRecord[]) {}
  get length(): number {
    return this.records.length;
  }
  path(i: number): string {
    return this.records[i]!.path;
  }
  rawPath(i: number): string | undefined {
    return this.records[i]!.rawPath;
  }
  record(i: number): FileRecord {
    return this.records[i]!;
  }
}

let recordSchema: typeof import('../../shared/manifest.js').fileRecordSchema | undefined;

/** Loads the schema (zod) that records out of the common shape are checked by: only when one comes. */
export async function loadRecordSchema(): Promise<void> {
  recordSchema ??= (await import('../../shared/manifest.js')).fileRecordSchema;
}

const FILES_OPEN = '"files":[';
const PATH_OPEN = '{"path":"';

/**
 * Lines of file records as `writeManifestStream` writes them (`JSON.stringify`, `path` first).
 * A line's path is cut from its text when it holds no escape and no rawPath, and the line is
 * parsed and checked only when its record is asked for; other lines are parsed at once.
 */
class LineBatch implements RecordBatch {
  readonly paths: string[] = [];
  readonly parsed: Array<FileRecord | undefined> = [];

  constructor(
    private readonly lines: readonly string[],
    /** The line number of lines[0], for errors. */
    private readonly firstLine: number,
    private readonly file: string,
  ) {}

  get length(): number {
    return this.lines.length;
  }
  path(i: number): string {
    return this.paths[i]!;
  }
  rawPath(i: number): string | undefined {
    return this.parsed[i]?.rawPath;
  }
  record(i: number): FileRecord | undefined {
    return (this.parsed[i] ??= parseRecordLine(this.lines[i]!, this.firstLine + i, this.file));
  }

  /** Fills `paths`; a line whose path cannot be cut is parsed now. */
  async place(): Promise<void> {
    for (let i = 0; i < this.lines.length; i++) {
      const line = this.lines[i]!;
      const cut = cutPath(line);
      if (cut !== undefined) {
        this.paths.push(cut);
        continue;
      }
      let rec = this.record(i);
      if (rec === undefined) {
        await loadRecordSchema();
        rec = this.record(i)!;
      }
      this.paths.push(rec.path);
    }
  }
}

/** The path of a record line when it can be cut from the text: no escape in it, no rawPath. */
function cutPath(line: string): string | undefined {
  if (!line.startsWith(PATH_OPEN)) return undefined;
  const end = line.indexOf('"', PATH_OPEN.length);
  if (end < 0) return undefined;
  const escape = line.indexOf('\\', PATH_OPEN.length);
  if ((escape >= 0 && escape < end) || line.includes('"rawPath"', end)) return undefined;
  return line.slice(PATH_OPEN.length, end);
}

/** One record line, checked; undefined when it needs the schema and that is not loaded yet. */
function parseRecordLine(line: string, n: number, file: string): FileRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new QuicksandError('MANIFEST_UNREADABLE', `manifest ${file}, line ${n}: not a JSON file record; was the file cut short or edited?`);
  }
  if (isPlainFileRecord(value)) return value;
  if (recordSchema === undefined) return undefined;
  const parsed = recordSchema.safeParse(value);
  if (!parsed.success) throw new QuicksandError('MANIFEST_INVALID', `manifest ${file}, line ${n}:\n${formatIssues(parsed.error)}`);
  return parsed.data;
}

/** Every record of `batches`, parsed. */
async function* allRecords(batches: AsyncIterable<RecordBatch>): AsyncGenerator<FileRecord[]> {
  for await (const batch of batches) {
    const out: FileRecord[] = [];
    for (let i = 0; i < batch.length; i++) {
      let rec = batch.record(i);
      if (rec === undefined) {
        await loadRecordSchema();
        rec = batch.record(i)!;
      }
      out.push(rec);
    }
    yield out;
  }
}

/**
 * Writes a manifest as ordinary JSON laid out one file record per line, after a first line that
 * holds everything else. Any JSON reader reads it; `openManifestSource` streams it line by line.
 * Written to a temporary file and renamed, so a crash never leaves a truncated manifest.
 */
export async function writeManifestStream(file: string, header: ManifestHeader, records: AsyncIterable<FileRecord[]>): Promise<number> {
  const tmp = `${file}.tmp-${process.pid}`;
  let count = 0;
  let sourceFailed = false;
  const text = async function* (): AsyncGenerator<string> {
    const head = JSON.stringify({ ...header, files: [] });
    yield `${head.slice(0, head.length - 3)}[`;
    try {
      for await (const batch of records) {
        let chunk = '';
        for (const r of batch) chunk += `${count++ === 0 ? '' : ','}\n${JSON.stringify(r)}`;
        if (chunk) yield chunk;
      }
    } catch (err) {
      sourceFailed = true;
      throw err;
    }
    yield '\n]}\n';
  };
  const out = createWriteStream(tmp, { mode: 0o644 });
  try {
    // pipeline: back-pressure from the disk, and a failed write (a full disk) fails the call.
    // Level 1: on the minbase's manifest 17 ms of deflate against level 6's 29 ms, for a file 5%
    // larger (2% at 1M paths); the CPU goes to the walk and the hashing instead.
    if (file.endsWith('.gz')) await pipeline(text(), createGzip({ level: 1 }), out);
    else await pipeline(text(), out);
    await rename(tmp, file);
  } catch (err) {
    // The file may still be being opened when the pipeline gives up: remove it once it is shut.
    if (!out.closed) await once(out, 'close').catch(() => {});
    await rm(tmp, { force: true });
    // The walk's own failures pass through as they are; only the file's are about the output.
    if (sourceFailed) throw err;
    throw new QuicksandError('OUTPUT_UNWRITABLE', `cannot write manifest ${file}: ${(err as Error).message}`);
  }
  return count;
}

/**
 * Opens a manifest file for streaming. A file in `writeManifestStream`'s layout is read line by
 * line, each record validated as it comes; anything else (a manifest another tool wrote or
 * pretty-printed) is read whole and sorted, which costs memory but gives the same result.
 */
export async function openManifestSource(file: string): Promise<ManifestSource> {
  // A small file is read once here. Of a gzipped one only the first line is inflated now, on
  // this thread: the rest inflates in the thread pool while the walk starts on the header's
  // policy and the package databases are read, and the first `records()` call waits for it (on
  // the 106k-path tree 60-100 ms of inflate that held up the walk threads' start).
  const raw = readSmallRaw(file);
  let first = raw === undefined ? undefined : raw.gzipped ? headLine(raw.bytes) : firstLine(raw.bytes);
  let whole: Promise<Buffer | undefined> | undefined = raw === undefined ? undefined : raw.gzipped ? inflateWholeAsync(raw.bytes, WHOLE_INFLATED_BYTES, file) : Promise.resolve(raw.bytes);
  // A failure is said when the records are asked for, not as an unhandled rejection before.
  whole?.catch(() => {});
  if (first === undefined) {
    const bytes = await whole;
    first = bytes === undefined ? await readFirstLine(file) : firstLine(bytes);
  }
  if (first === undefined || !first.endsWith(FILES_OPEN)) return memorySource(await readManifestFile(file));
  let header: ManifestHeader;
  try {
    const value: unknown = JSON.parse(`${first}]}`);
    // The schema (zod) is loaded only for a header out of the common shape: a scan then starts
    // without paying for it.
    header = isPlainManifestHeader(value) ? value : (await import('../../shared/manifest.js')).parseManifest(value, `manifest ${file}`);
  } catch (err) {
    if (err instanceof QuicksandError) throw err;
    return memorySource(await readManifestFile(file));
  }
  delete (header as Partial<Manifest>).files;
  const batches = async function* (): AsyncGenerator<RecordBatch> {
    const lines = readLines(file, await whole);
    whole = undefined;
    let n = 0;
    let prevPath: string | undefined;
    let prevRaw: string | undefined;
    let pending: string[] = [];
    let firstLine = 2;
    let ended = false;
    const place = async (): Promise<LineBatch> => {
      const batch = new LineBatch(pending, firstLine, file);
      await batch.place();
      for (let i = 0; i < batch.length; i++) {
        const p = batch.path(i);
        const raw = batch.rawPath(i);
        if (prevPath !== undefined && comparePaths(prevPath, prevRaw, p, raw) >= 0) {
          throw new QuicksandError('MANIFEST_INVALID', `manifest ${file}, line ${firstLine + i}: ${p} is out of order or repeated; rebuild it with quicksand-agent manifest`);
        }
        prevPath = p;
        prevRaw = raw;
      }
      firstLine += pending.length;
      pending = [];
      return batch;
    };
    reading: for await (const chunk of lines) {
      for (const raw of chunk) {
        if (n++ === 0) continue;
        if (raw === ']}') {
          ended = true;
          break reading;
        }
        pending.push(raw.endsWith(',') ? raw.slice(0, -1) : raw);
        // Inside the chunk's loop: a small file comes as one chunk, and a scan must not hold
        // all its records at once (a large heap makes every young collection dearer).
        if (pending.length >= 1024) yield await place();
      }
    }
    if (!ended) throw new QuicksandError('MANIFEST_UNREADABLE', `manifest ${file} ends before its last file record; was it cut short while being written?`);
    if (pending.length > 0) yield await place();
  };
  return {
    header,
    identity: () => fileDigest(file),
    batches,
    records: () => allRecords(batches()),
  };
}

/**
 * The sha256 of a file's bytes as stored (gzipped or not), read in pieces: a manifest's
 * identity, a few tens of milliseconds at a million records. Undefined when it cannot be read
 * (the reader then says why).
 */
export function fileDigest(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (;;) {
      const got = readSync(fd, buf, 0, buf.length, null);
      if (got === 0) break;
      hash.update(buf.subarray(0, got));
    }
    return hash.digest('hex');
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

// `capability` and `ima` are rare: such a record takes the schema's path. A SELinux host labels
// every file, so `selinux` is checked here; every host has config files with `text` (or
// `noText`), and one of them alone would load the schema (zod) into every scan.
const RECORD_KEYS = new Set(['path', 'type', 'mode', 'uid', 'gid', 'size', 'sha256', 'target', 'selinux', 'owner', 'text', 'noText']);
const OMISSIONS = new Set<string>(TEXT_OMISSIONS);
const TYPES = new Set<string>(FILE_TYPES);
const ECOSYSTEM_NAMES = new Set<string>(ECOSYSTEMS);
const MODE = /^[0-7]{4}$/;
/** /^[0-9a-f]{64}$/ by hand: at a million records the regular expression costs ~0.5 s. */
function isSha256Hex(v: unknown): boolean {
  if (typeof v !== 'string' || v.length !== 64) return false;
  for (let i = 0; i < 64; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || (c > 57 && c < 97) || c > 102) return false;
  }
  return true;
}
const count = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
/** A string of at most `max` characters, the schema's bounds (shared/limits.ts). */
const within = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;

/**
 * The common shape of a file record, checked by hand: a million records through the schema
 * cost seconds. Stricter than `fileRecordSchema` (anything unusual, a rawPath say, answers
 * false), so a record it passes is one the schema passes; the rest go through the schema.
 */
export function isPlainFileRecord(v: unknown): v is FileRecord {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const r = v as Record<string, unknown>;
  for (const k in r) if (!RECORD_KEYS.has(k)) return false;
  if (!within(r.path, LIMITS.path) || r.path.charCodeAt(0) !== 47) return false;
  if (typeof r.type !== 'string' || !TYPES.has(r.type)) return false;
  if (typeof r.mode !== 'string' || !MODE.test(r.mode)) return false;
  if (!count(r.uid) || !count(r.gid)) return false;
  if (r.size !== undefined && !count(r.size)) return false;
  if (r.sha256 !== undefined && !isSha256Hex(r.sha256)) return false;
  if (r.target !== undefined && !within(r.target, LIMITS.path)) return false;
  if (r.selinux !== undefined && (!within(r.selinux, LIMITS.path) || r.selinux === '')) return false;
  if (r.text !== undefined && !within(r.text, MAX_CONFIG_TEXT_CHARS)) return false;
  if (r.noText !== undefined && (typeof r.noText !== 'string' || !OMISSIONS.has(r.noText))) return false;
  if (r.owner !== undefined) {
    const o = r.owner as Record<string, unknown> | null;
    if (typeof o !== 'object' || o === null || Array.isArray(o) || Object.keys(o).length !== 2) return false;
    if (typeof o.ecosystem !== 'string' || !ECOSYSTEM_NAMES.has(o.ecosystem) || !within(o.name, LIMITS.name) || o.name === '') return false;
  }
  return true;
}

const IMAGE_KEYS = new Set(['name', 'version', 'createdAt', 'source']);
const SOURCES = new Set(['root', 'kiwi', 'sbom']);
const PACKAGE_KEYS = new Set(['ecosystem', 'name', 'version', 'arch']);
const paths = (v: unknown): v is string[] => Array.isArray(v) && v.length <= LIMITS.notes && v.every((x) => within(x, LIMITS.path));
const plainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const filled = (v: unknown): boolean => within(v, LIMITS.name) && v !== '';

/**
 * A manifest's header (everything but its file records, `files` empty) in the shape this agent
 * writes, checked by hand like `isPlainFileRecord`: stricter than `manifestSchema` (a missing
 * policy, a timestamp not written by `toISOString`, any key too many answer false), so what it
 * passes the schema passes; the rest go through the schema.
 */
export function isPlainManifestHeader(v: unknown): v is Manifest {
  if (!plainObject(v)) return false;
  for (const k in v) if (!['schema', 'image', 'policy', 'packages', 'files'].includes(k)) return false;
  if (v.schema !== MANIFEST_SCHEMA || !Array.isArray(v.files) || v.files.length !== 0) return false;
  const image = v.image;
  if (!plainObject(image) || Object.keys(image).length !== IMAGE_KEYS.size || !Object.keys(image).every((k) => IMAGE_KEYS.has(k))) return false;
  if (!filled(image.name) || !filled(image.version) || typeof image.source !== 'string' || !SOURCES.has(image.source)) return false;
  if (typeof image.createdAt !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(image.createdAt)) return false;
  const at = new Date(image.createdAt);
  if (Number.isNaN(at.getTime()) || at.toISOString() !== image.createdAt) return false;
  const policy = v.policy;
  if (!plainObject(policy) || Object.keys(policy).length !== 3) return false;
  if (!paths(policy.tracked) || !paths(policy.ignored) || !paths(policy.mutable)) return false;
  if (!policy.tracked.every((t) => t.charCodeAt(0) === 47)) return false;
  if (!Array.isArray(v.packages) || v.packages.length > MAX_MANIFEST_PACKAGES) return false;
  for (const p of v.packages as unknown[]) {
    if (!plainObject(p)) return false;
    for (const k in p) if (!PACKAGE_KEYS.has(k)) return false;
    if (typeof p.ecosystem !== 'string' || !ECOSYSTEM_NAMES.has(p.ecosystem) || !filled(p.name) || !filled(p.version)) return false;
    if (p.arch !== undefined && !within(p.arch, 100)) return false;
  }
  return true;
}

/** A manifest already in memory, its records put in walk order. */
export function memorySource(manifest: Manifest): ManifestSource {
  const { files, ...header } = manifest;
  const sorted = [...files].sort(compareRecordPaths);
  const records = async function* (): AsyncGenerator<FileRecord[]> {
    for (let i = 0; i < sorted.length; i += 1024) yield sorted.slice(i, i + 1024);
  };
  return {
    header,
    records,
    async *batches() {
      for await (const batch of records()) yield new ParsedBatch(batch);
    },
  };
}

/** Up to this size a plain manifest file is read in one go: far quicker than a stream of chunks. */
const WHOLE_FILE_BYTES = 4 * 1024 * 1024;
/**
 * Up to this size inflated a gzipped manifest is inflated in one call (~106k records make ~17
 * MiB): past it, and whatever its gzip trailer claims, it is streamed and memory stays bounded.
 */
const WHOLE_INFLATED_BYTES = 64 * 1024 * 1024;

/**
 * A plain manifest file of at most WHOLE_FILE_BYTES, or a gzipped one that inflates to at most
 * WHOLE_INFLATED_BYTES, read and inflated; undefined for a larger one (or one that cannot be
 * read: the reader then says why). A large gzipped file is told by its trailer, before its bytes
 * are read.
 */
function readSmall(file: string): Buffer | undefined {
  const raw = readSmallRaw(file);
  if (raw === undefined || !raw.gzipped) return raw?.bytes;
  return inflateWhole(raw.bytes, WHOLE_INFLATED_BYTES, file);
}

/** `readSmall`'s bytes as they are on disk: undefined for a file it would not read whole. */
function readSmallRaw(file: string): { bytes: Buffer; gzipped: boolean } | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  let bytes: Buffer;
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(2);
    readSync(fd, head, 0, 2, 0);
    const gzipped = head[0] === 0x1f && head[1] === 0x8b;
    if (size > (gzipped ? WHOLE_INFLATED_BYTES : WHOLE_FILE_BYTES)) return undefined;
    if (gzipped && size >= 18) {
      const trailer = Buffer.alloc(4);
      readSync(fd, trailer, 0, 4, size - 4);
      // The trailer's size (ISIZE, the inflated size modulo 2^32) only picks the way: a file that
      // claims more is streamed without a try, one that claims less is still held to the limit.
      if (trailer.readUInt32LE(0) > WHOLE_INFLATED_BYTES) return undefined;
    }
    bytes = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, bytes, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    return { bytes: bytes.subarray(0, got), gzipped };
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** What a gzipped file's first HEAD_INPUT bytes give, at most HEAD_OUTPUT bytes of it. */
const HEAD_INPUT = 64 * 1024;
const HEAD_OUTPUT = 1024 * 1024;

/**
 * The first line of gzipped `bytes` from an inflate of their beginning alone, when it ends there;
 * undefined when it does not (or that beginning does not inflate: the whole inflate then says why).
 */
function headLine(bytes: Buffer): string | undefined {
  let text: Buffer;
  try {
    // A sync flush at the end of the input: what inflates so far, without the error of a cut stream.
    text = gunzipSync(bytes.subarray(0, HEAD_INPUT), { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: HEAD_OUTPUT });
  } catch {
    return undefined;
  }
  const end = text.indexOf(10);
  return end < 0 ? undefined : text.toString('utf8', 0, end);
}

/**
 * A gzipped file's bytes inflated in one call, or undefined when they inflate to more than `max`
 * bytes (the caller then streams them): zlib's maxOutputLength stops the inflate there, whatever
 * the gzip trailer claims; no allocation is sized by what the file says. Damaged data fails with
 * the file named.
 */
export function inflateWhole(bytes: Buffer, max: number, file: string): Buffer | undefined {
  try {
    return gunzipSync(bytes, { maxOutputLength: max, chunkSize: INFLATE_CHUNK });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return undefined;
    throw damagedGzip(file);
  }
}

const damagedGzip = (file: string): QuicksandError => new QuicksandError('MANIFEST_UNREADABLE', `manifest ${file} is gzipped but the data is damaged or cut short`);

/** `inflateWhole` in the thread pool. */
function inflateWholeAsync(bytes: Buffer, max: number, file: string): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    gunzip(bytes, { maxOutputLength: max, chunkSize: INFLATE_CHUNK }, (err, out) => {
      if (err === null) resolve(out);
      else if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') resolve(undefined);
      else reject(damagedGzip(file));
    });
  });
}

/** What one inflate call writes at a time before the pieces are joined. */
const INFLATE_CHUNK = 1024 * 1024;

function firstLine(bytes: Buffer): string {
  const end = bytes.indexOf(10);
  return bytes.toString('utf8', 0, end < 0 ? bytes.length : end);
}

/**
 * The lines of a (possibly gzipped) text file, a chunk at a time; streamed when the file is
 * large. A small one's lines are cut from its bytes as they are read: never one string of it all.
 * A line longer than LIMITS.manifestLine bytes fails the read.
 */
async function* readLines(file: string, small?: Buffer): AsyncGenerator<string[]> {
  const tooLong = (line: number): QuicksandError =>
    new QuicksandError('MANIFEST_UNREADABLE', `manifest ${file}, line ${line}: longer than ${LIMITS.manifestLine / 1024 ** 2} MiB, the most one line of a manifest may hold`);
  let lineNo = 0;
  const bytes = small ?? readSmall(file);
  if (bytes !== undefined) {
    // 1,024 lines at a time: their ends found (and held to the limit) in the bytes, then decoded
    // as one string and split, not one decode per line. A newline byte is a newline in the text.
    let at = 0;
    while (at <= bytes.length) {
      const from = at;
      let end = at;
      for (let n = 0; n < 1024 && at <= bytes.length; n++) {
        end = bytes.indexOf(10, at);
        if (end < 0) end = bytes.length;
        lineNo++;
        if (end - at > LIMITS.manifestLine) throw tooLong(lineNo);
        at = end + 1;
      }
      yield bytes.toString('utf8', from, end).split('\n');
    }
    return;
  }
  // Each inflated chunk up to its last newline is decoded once and split: at 1M records that is
  // ~1 s less than readline's string and event per line. The bytes of a line not ended yet are
  // kept in pieces and joined once its newline comes: a long line is copied once, not once per
  // chunk. A character cut by a chunk's end stays whole in those pieces.
  let parts: Buffer[] = [];
  let partBytes = 0;
  for await (const data of inflated(openText(file), file)) {
    const first = data.indexOf(10);
    if (first < 0) {
      parts.push(data);
      partBytes += data.length;
      if (partBytes > LIMITS.manifestLine) throw tooLong(lineNo + 1);
      continue;
    }
    const last = data.lastIndexOf(10);
    const lines: string[] = [];
    if (partBytes + first > LIMITS.manifestLine) throw tooLong(lineNo + 1);
    lines.push(parts.length === 0 ? data.toString('utf8', 0, first) : Buffer.concat([...parts, data.subarray(0, first)]).toString('utf8'));
    if (last > first) for (const line of data.toString('utf8', first + 1, last).split('\n')) lines.push(line);
    parts = last + 1 < data.length ? [data.subarray(last + 1)] : [];
    partBytes = data.length - last - 1;
    // Whole lines within one chunk are at most its size: only the one carried over can grow.
    for (let i = 0; i < lines.length; i++) if (lines[i]!.endsWith('\r')) lines[i] = lines[i]!.slice(0, -1);
    lineNo += lines.length;
    for (let i = 0; i < lines.length; i += 1024) yield lines.slice(i, i + 1024);
  }
  if (parts.length > 0) yield [Buffer.concat(parts).toString('utf8')];
}

/** The chunks of `text`; a gzip stream whose data does not check out fails as the manifest's fault, with the file named. */
async function* inflated(text: Readable, file: string): AsyncGenerator<Buffer> {
  try {
    for await (const data of text as AsyncIterable<Buffer>) yield data;
  } catch (err) {
    if (String((err as NodeJS.ErrnoException).code).startsWith('Z_')) throw damagedGzip(file);
    throw err;
  }
}

function openText(file: string): Readable {
  const magic = Buffer.alloc(2);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, magic, 0, 2, 0);
  } finally {
    closeSync(fd);
  }
  // Chunks of 256 KiB: a fourth of the callbacks (and splits) of the 64 KiB default.
  const raw = createReadStream(file, { highWaterMark: 256 * 1024 });
  if (magic[0] !== 0x1f || magic[1] !== 0x8b) return raw;
  // pipeline, not pipe: a damaged gzip stream must fail the read, not end it quietly.
  return pipe(raw, createGunzip({ chunkSize: 256 * 1024 }), () => {});
}

async function readFirstLine(file: string): Promise<string | undefined> {
  const lines = readLines(file);
  try {
    for await (const chunk of lines) return chunk[0];
  } catch (err) {
    // A line over the limit is said as it is; for anything else readManifestFile, which the
    // caller falls back to, says why with the right error code.
    if (err instanceof QuicksandError) throw err;
  } finally {
    await lines.return(undefined);
  }
  return undefined;
}
