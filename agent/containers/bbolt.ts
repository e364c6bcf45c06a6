/**
 * A read-only reader of bbolt files (go.etcd.io/bbolt), over the file's bytes read once (a copy:
 * the owner keeps it locked and writes in place, so the file is never mapped or read twice).
 * Pure: no I/O. Every offset, count and page id is checked before it is used, so a damaged or
 * hostile file ends in a `BoltError` naming the page and what was wrong, never a crash or a hang.
 *
 * The layout, from bbolt's internal/common/{page,meta,bucket,types}.go and db.go (format version
 * 2; integers in the writer's byte order, little-endian on amd64/arm64, which is all we read):
 * - The file is pages of `pageSize` bytes. Page `n` starts at `n * pageSize`; a page with
 *   `overflow = k` spans `k + 1` pages.
 * - Page header, 16 bytes: `id u64, flags u16, count u16, overflow u32`. Flags: 0x01 branch,
 *   0x02 leaf, 0x04 meta, 0x10 freelist (exactly one).
 * - Pages 0 and 1 are meta pages; after the header: `magic u32 (0xED0CDAED), version u32 (2),
 *   pageSize u32, flags u32, root {pgid u64, sequence u64}, freelist u64, pgid u64 (high water
 *   mark: no page id reaches it), txid u64, checksum u64` = FNV-1a 64 of the 56 bytes before it.
 *   The valid meta with the higher txid is the current one (db.meta()); the other is the last
 *   transaction but one, used when the newer is torn.
 * - Branch page: `count` elements of `pos u32, ksize u32, pgid u64` after the header; an element's
 *   key is `ksize` bytes at `pos` from the element's own start; `pgid` is the child holding the
 *   keys from this one up to the next element's.
 * - Leaf page: `count` elements of `flags u32, pos u32, ksize u32, vsize u32`; key at `pos` from
 *   the element, its value right after the key. Flag 0x01: the value is a bucket.
 * - A bucket value: `root u64, sequence u64`, then, when `root` is 0, the bucket's only page
 *   inline (an "inline bucket": a leaf page header and elements, offsets relative to that page).
 *   The meta's `root` is the top-level bucket, whose keys are the top-level buckets' names.
 * Keys in a page are sorted; this reader does not need that (it reads whole buckets).
 */

export class BoltError extends Error {}

export interface BoltEntry {
  key: Buffer;
  /** The value, or null when the entry is a bucket (read it with `BoltBucket.bucket`). */
  value: Buffer | null;
}

const MAGIC = 0xed0cdaed;
const VERSION = 2;
const HEADER = 16;
const ELEMENT = 16;
const META_CHECKED = 56;
const BRANCH = 0x01;
const LEAF = 0x02;
const META = 0x04;
const BUCKET_LEAF = 0x01;
/** bbolt's B+trees are shallow (fill ≥ 2 keys per page): 32 levels is far past any real file. */
const MAX_TREE_DEPTH = 32;
const MAX_BUCKET_DEPTH = 32;
const DEFAULT_MAX_ENTRIES = 2_000_000;

interface Meta {
  pageSize: number;
  root: bigint;
  highWater: bigint;
  txid: bigint;
}

export class BoltFile {
  private readonly claimed = new Set<number>();
  private entriesLeft: number;
  readonly pageSize: number;
  private readonly highWater: number;
  readonly txid: bigint;

  /** Opens `buf` (the whole file); `name` is for messages. Throws a BoltError when neither meta page is valid. */
  constructor(
    private readonly buf: Buffer,
    readonly name = 'bbolt file',
    opts: { maxEntries?: number } = {},
  ) {
    this.entriesLeft = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
    const meta = this.currentMeta();
    this.pageSize = meta.pageSize;
    this.highWater = Number(meta.highWater);
    this.txid = meta.txid;
    // bbolt grows the file before it writes past it: a file shorter than its pages in use was cut.
    if (buf.length < this.highWater * this.pageSize) throw new BoltError(`${name} is cut short: ${buf.length} bytes, but its meta page counts ${this.highWater} pages of ${this.pageSize} bytes`);
    this.top = new BoltBucket(this, { page: this.pageId(meta.root, 'the meta root') }, 0, '');
  }

  private readonly top: BoltBucket;

  /** The top-level bucket: its entries are the file's buckets. */
  root(): BoltBucket {
    return this.top;
  }

  private currentMeta(): Meta {
    if (this.buf.length < HEADER + 64) throw new BoltError(`${this.name} is ${this.buf.length} bytes: too short for a bbolt file`);
    const errors: string[] = [];
    const first = this.readMeta(0, errors);
    // The second meta page is at `pageSize`, which only a valid meta tells: use the first's, or
    // try the sizes bbolt itself tries (1 KiB << i, db.getPageSizeFromSecondMeta).
    const sizes = first ? [first.pageSize] : Array.from({ length: 15 }, (_, i) => 1024 << i);
    let second: Meta | null = null;
    for (const size of sizes) {
      if (size + HEADER + 64 > this.buf.length) break;
      second = this.readMeta(size, first ? errors : []);
      if (second !== null && second.pageSize === size) break;
      second = null;
    }
    const valid = [first, second].filter((m): m is Meta => m !== null);
    if (valid.length === 0) throw new BoltError(`${this.name} has no valid meta page (${errors.join('; ') || 'not a bbolt file'})`);
    return valid.sort((a, b) => (b.txid > a.txid ? 1 : b.txid < a.txid ? -1 : 0))[0]!;
  }

  private readMeta(offset: number, errors: string[]): Meta | null {
    const b = this.buf;
    const m = offset + HEADER;
    if (b.readUInt16LE(offset + 8) !== META) {
      errors.push(`page at byte ${offset} is not a meta page`);
      return null;
    }
    const magic = b.readUInt32LE(m);
    if (magic !== MAGIC) {
      errors.push(magic === 0xedda0ced ? 'written in big-endian byte order, which this reader does not read' : `bad magic at byte ${m}`);
      return null;
    }
    const version = b.readUInt32LE(m + 4);
    if (version !== VERSION) {
      errors.push(`format version ${version} at byte ${m + 4}, expected ${VERSION}`);
      return null;
    }
    if (fnv1a64(b.subarray(m, m + META_CHECKED)) !== b.readBigUInt64LE(m + META_CHECKED)) {
      errors.push(`meta page at byte ${offset} fails its checksum (torn write?)`);
      return null;
    }
    const pageSize = b.readUInt32LE(m + 8);
    if (pageSize < 512 || pageSize > 1 << 24 || (pageSize & (pageSize - 1)) !== 0) {
      errors.push(`page size ${pageSize} is not a power of two from 512 B to 16 MiB`);
      return null;
    }
    return { pageSize, root: b.readBigUInt64LE(m + 16), highWater: b.readBigUInt64LE(m + 40), txid: b.readBigUInt64LE(m + 48) };
  }

  /** A page id that may be read: past the meta pages, below the high water mark and inside the file. */
  pageId(id: bigint, what: string): number {
    if (id < 2n || id >= BigInt(this.highWater) || id * BigInt(this.pageSize) >= BigInt(this.buf.length)) {
      throw new BoltError(`${this.name}: ${what} points at page ${id}, outside the pages in use (2…${this.highWater - 1}, file of ${Math.floor(this.buf.length / this.pageSize)} pages)`);
    }
    return Number(id);
  }

  /**
   * The bytes of page `id` (with its overflow pages). Each page is read once per file: a page
   * reached twice is a cycle or two trees sharing a page, which bbolt never writes.
   */
  page(id: number): Buffer {
    if (this.claimed.has(id)) throw new BoltError(`${this.name}: page ${id} is reached twice (a cycle in the tree)`);
    this.claimed.add(id);
    const start = id * this.pageSize;
    const header = this.buf.subarray(start, start + HEADER);
    if (header.length < HEADER) throw new BoltError(`${this.name}: page ${id} is cut off by the end of the file`);
    const selfId = header.readBigUInt64LE(0);
    if (selfId !== BigInt(id)) throw new BoltError(`${this.name}: page ${id} calls itself page ${selfId}`);
    const overflow = header.readUInt32LE(12);
    if (id + overflow >= this.highWater) throw new BoltError(`${this.name}: page ${id} overflows by ${overflow} pages, past the pages in use`);
    const end = start + (overflow + 1) * this.pageSize;
    if (end > this.buf.length) throw new BoltError(`${this.name}: page ${id} (+${overflow} overflow pages) runs past the end of the file`);
    return this.buf.subarray(start, end);
  }

  /** Counts entries read against the file's budget: a file of more is refused, not read for ever. */
  spend(n: number): void {
    this.entriesLeft -= n;
    if (this.entriesLeft < 0) throw new BoltError(`${this.name}: more entries than the ${DEFAULT_MAX_ENTRIES} this reader reads`);
  }
}

type BucketRoot = { page: number } | { inline: Buffer };

/** One bucket: read whole on first use (containerd's buckets are small), then looked up by key. */
export class BoltBucket {
  private list: BoltEntry[] | null = null;
  private byKey: Map<string, BoltEntry> | null = null;
  private readonly children = new Map<string, BoltBucket | null>();

  constructor(
    private readonly file: BoltFile,
    private readonly at: BucketRoot,
    private readonly depth: number,
    /** Path of bucket names from the top, for messages. */
    readonly path: string,
  ) {}

  entries(): BoltEntry[] {
    if (this.list === null) {
      const out: BoltEntry[] = [];
      if ('inline' in this.at) this.readLeaf(this.at.inline, 'inline page', out);
      else this.readTree(this.at.page, 0, out);
      this.list = out;
    }
    return this.list;
  }

  /** The value at `key`, undefined when absent or a bucket. */
  get(key: string): Buffer | undefined {
    return this.entry(latin1(key))?.value ?? undefined;
  }

  /** The nested bucket at `key`, undefined when absent or a plain value. */
  bucket(key: string | Buffer): BoltBucket | undefined {
    const k = typeof key === 'string' ? latin1(key) : key.toString('latin1');
    if (this.children.has(k)) return this.children.get(k) ?? undefined;
    const e = this.entry(k);
    let child: BoltBucket | null = null;
    if (e !== undefined && e.value === null) child = this.open(e.key, this.rawValues.get(k)!);
    this.children.set(k, child);
    return child ?? undefined;
  }

  /** The names of the nested buckets that are UTF-8 text (read the others by `entries()`). */
  bucketNames(): string[] {
    return this.entries()
      .filter((e) => e.value === null)
      .map((e) => e.key.toString('utf8'))
      .filter((name) => !name.includes('\uFFFD'));
  }

  private readonly rawValues = new Map<string, Buffer>();

  /** `key`: the key's bytes as a latin1 string (one character per byte). */
  private entry(key: string): BoltEntry | undefined {
    if (this.byKey === null) this.byKey = new Map(this.entries().map((e) => [e.key.toString('latin1'), e]));
    return this.byKey.get(key);
  }

  private open(key: Buffer, value: Buffer): BoltBucket {
    const where = `${this.path}/${key.toString('utf8')}`;
    if (this.depth + 1 > MAX_BUCKET_DEPTH) throw new BoltError(`${this.file.name}: buckets nested deeper than ${MAX_BUCKET_DEPTH} at ${where}`);
    if (value.length < HEADER) throw new BoltError(`${this.file.name}: bucket ${where} has a ${value.length}-byte header, expected ${HEADER}`);
    const root = value.readBigUInt64LE(0);
    if (root !== 0n) return new BoltBucket(this.file, { page: this.file.pageId(root, `bucket ${where}`) }, this.depth + 1, where);
    const inline = value.subarray(HEADER);
    if (inline.length < HEADER) throw new BoltError(`${this.file.name}: inline bucket ${where} is ${inline.length} bytes, too short for its page`);
    return new BoltBucket(this.file, { inline }, this.depth + 1, where);
  }

  private readTree(id: number, level: number, out: BoltEntry[]): void {
    if (level > MAX_TREE_DEPTH) throw new BoltError(`${this.file.name}: bucket ${this.path || '/'} is deeper than ${MAX_TREE_DEPTH} levels`);
    const page = this.file.page(id);
    const flags = page.readUInt16LE(8);
    if (flags === LEAF) return this.readLeaf(page, `page ${id}`, out);
    if (flags !== BRANCH) throw new BoltError(`${this.file.name}: page ${id} of bucket ${this.path || '/'} has flags 0x${flags.toString(16)}, neither branch nor leaf`);
    const count = this.elementCount(page, `page ${id}`);
    for (let i = 0; i < count; i++) {
      const el = HEADER + i * ELEMENT;
      this.file.spend(1);
      this.readTree(this.file.pageId(page.readBigUInt64LE(el + 8), `branch page ${id} element ${i}`), level + 1, out);
    }
  }

  private readLeaf(page: Buffer, where: string, out: BoltEntry[]): void {
    const flags = page.readUInt16LE(8);
    if (flags !== LEAF) throw new BoltError(`${this.file.name}: ${where} of bucket ${this.path || '/'} has flags 0x${flags.toString(16)}, expected a leaf`);
    const count = this.elementCount(page, where);
    this.file.spend(count);
    for (let i = 0; i < count; i++) {
      const el = HEADER + i * ELEMENT;
      const elFlags = page.readUInt32LE(el);
      const pos = page.readUInt32LE(el + 4);
      const ksize = page.readUInt32LE(el + 8);
      const vsize = page.readUInt32LE(el + 12);
      const start = el + pos;
      if (pos < ELEMENT * (count - i) || start + ksize + vsize > page.length) {
        throw new BoltError(`${this.file.name}: ${where} element ${i} of bucket ${this.path || '/'} points outside its page (pos ${pos}, key ${ksize} B, value ${vsize} B, page ${page.length} B)`);
      }
      const key = page.subarray(start, start + ksize);
      const value = page.subarray(start + ksize, start + ksize + vsize);
      if (elFlags & BUCKET_LEAF) {
        this.rawValues.set(key.toString('latin1'), value);
        out.push({ key, value: null });
      } else out.push({ key, value });
    }
  }

  private elementCount(page: Buffer, where: string): number {
    const count = page.readUInt16LE(10);
    if (HEADER + count * ELEMENT > page.length) throw new BoltError(`${this.file.name}: ${where} claims ${count} elements, more than its ${page.length} bytes hold`);
    return count;
  }
}

/** A UTF-8 key's bytes, one latin1 character per byte: the maps' keys, whatever bytes a key holds. */
function latin1(key: string): string {
  return Buffer.from(key, 'utf8').toString('latin1');
}

/** FNV-1a, 64 bits (Go's hash/fnv New64a), as bbolt checksums its meta pages. */
function fnv1a64(bytes: Buffer): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return h;
}

/** Go's binary.Uvarint, bounded to a safe integer; null when malformed. */
export function uvarint(b: Buffer | undefined): number | null {
  if (b === undefined) return null;
  let x = 0;
  let scale = 1;
  for (let i = 0; i < b.length && i < 8; i++) {
    const byte = b[i]!;
    x += (byte & 0x7f) * scale;
    if (byte < 0x80) return Number.isSafeInteger(x) ? x : null;
    scale *= 128;
  }
  return null;
}
