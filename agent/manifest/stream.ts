import { closeSync, createReadStream, createWriteStream, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { pipeline as pipe } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { createGunzip, createGzip, gunzipSync } from 'node:zlib';
import { QuicksandError } from '../../shared/errors.js';
import { FILE_TYPES, MANIFEST_SCHEMA, MAX_MANIFEST_PACKAGES } from '../../shared/manifest-format.js';
import { LIMITS } from '../../shared/limits.js';
import { ECOSYSTEMS } from '../../shared/findings.js';
import { MAX_CONFIG_TEXT_CHARS, TEXT_OMISSIONS } from '../../shared/config-text.js';
import type { FileRecord, Manifest } from '../../shared/manifest.js';
import { formatIssues } from '../../shared/schema-errors.js';
import { compareRecordPaths } from '../fingerprint/walk.js';
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
}

const FILES_OPEN = '"files":[';

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
  // A small file is read and inflated once here; its first `records()` call takes the bytes.
  let small = readSmall(file);
  const first = small === undefined ? await readFirstLine(file) : firstLine(small);
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
  return {
    header,
    async *records() {
      const lines = readLines(file, small);
      small = undefined;
      let n = 0;
      let prev: FileRecord | undefined;
      let batch: FileRecord[] = [];
      let ended = false;
      reading: for await (const chunk of lines) {
        for (const raw of chunk) {
          if (n++ === 0) continue;
          if (raw === ']}') {
            ended = true;
            break reading;
          }
          const line = raw.endsWith(',') ? raw.slice(0, -1) : raw;
          let value: unknown;
          try {
            value = JSON.parse(line);
          } catch {
            throw new QuicksandError('MANIFEST_UNREADABLE', `manifest ${file}, line ${n}: not a JSON file record; was the file cut short or edited?`);
          }
          let record: FileRecord;
          if (isPlainFileRecord(value)) record = value;
          else {
            const { fileRecordSchema } = await import('../../shared/manifest.js');
            const parsed = fileRecordSchema.safeParse(value);
            if (!parsed.success) throw new QuicksandError('MANIFEST_INVALID', `manifest ${file}, line ${n}:\n${formatIssues(parsed.error)}`);
            record = parsed.data;
          }
          if (prev !== undefined && compareRecordPaths(prev, record) >= 0) {
            throw new QuicksandError('MANIFEST_INVALID', `manifest ${file}, line ${n}: ${record.path} is out of order or repeated; rebuild it with quicksand-agent manifest`);
          }
          prev = record;
          batch.push(record);
          // Inside the chunk's loop: a small file comes as one chunk, and a scan must not hold
          // all its records at once (a large heap makes every young collection dearer).
          if (batch.length >= 1024) {
            yield batch;
            batch = [];
          }
        }
      }
      if (!ended) throw new QuicksandError('MANIFEST_UNREADABLE', `manifest ${file} ends before its last file record; was it cut short while being written?`);
      if (batch.length > 0) yield batch;
    },
  };
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
  return {
    header,
    async *records() {
      for (let i = 0; i < sorted.length; i += 1024) yield sorted.slice(i, i + 1024);
    },
  };
}

/** Up to this size a manifest file is read and inflated in one go: far quicker than a stream of chunks. */
const WHOLE_FILE_BYTES = 4 * 1024 * 1024;

/**
 * A manifest file of at most WHOLE_FILE_BYTES, read and inflated; undefined for a larger one
 * (or one that cannot be stat'ed: the reader then says why).
 */
function readSmall(file: string): Buffer | undefined {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return undefined;
  }
  if (size > WHOLE_FILE_BYTES) return undefined;
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    return undefined;
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch {
      throw new QuicksandError('MANIFEST_UNREADABLE', `manifest ${file} is gzipped but the data is damaged or cut short`);
    }
  }
  return bytes;
}

function firstLine(bytes: Buffer): string {
  const end = bytes.indexOf(10);
  return bytes.toString('utf8', 0, end < 0 ? bytes.length : end);
}

/**
 * The lines of a (possibly gzipped) text file, a chunk at a time; streamed when the file is
 * large. A small one's lines are cut from its bytes as they are read: never one string of it all.
 */
async function* readLines(file: string, small?: Buffer): AsyncGenerator<string[]> {
  const bytes = small ?? readSmall(file);
  if (bytes !== undefined) {
    let at = 0;
    while (at <= bytes.length) {
      const chunk: string[] = [];
      while (chunk.length < 1024 && at <= bytes.length) {
        let end = bytes.indexOf(10, at);
        if (end < 0) end = bytes.length;
        chunk.push(bytes.toString('utf8', at, end));
        at = end + 1;
      }
      yield chunk;
    }
    return;
  }
  // Each inflated chunk up to its last newline is decoded once and split: at 1M records that is
  // ~1 s less than readline's string and event per line. A character cut by the chunk's end
  // stays in `rest`, whole, for the next one.
  let rest: Buffer | undefined;
  for await (const data of openText(file)) {
    const bytes: Buffer = rest === undefined ? data : Buffer.concat([rest, data]);
    const end = bytes.lastIndexOf(10);
    if (end < 0) {
      rest = bytes;
      continue;
    }
    rest = end + 1 < bytes.length ? bytes.subarray(end + 1) : undefined;
    const lines = bytes.toString('utf8', 0, end).split('\n');
    // As readline reads them (crlfDelay: Infinity): a CR before the newline is not the line's.
    for (let i = 0; i < lines.length; i++) if (lines[i]!.endsWith('\r')) lines[i] = lines[i]!.slice(0, -1);
    for (let i = 0; i < lines.length; i += 1024) yield lines.slice(i, i + 1024);
  }
  if (rest !== undefined) yield [rest.toString('utf8')];
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
  } catch {
    // readManifestFile, which the caller falls back to, says why with the right error code
  } finally {
    await lines.return(undefined);
  }
  return undefined;
}
