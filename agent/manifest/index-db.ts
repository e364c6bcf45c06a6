import { statSync } from 'node:fs';
import path from 'node:path';
import type { Database as Db, Statement } from 'better-sqlite3';
import type { FileRecord, FileType, Manifest } from '../../shared/manifest.js';
import { isUnder } from '../../shared/policy.js';
import { compareRecordPaths } from '../fingerprint/walk.js';
import { openManifestSource } from './stream.js';
import type { ManifestHeader } from './stream.js';

/**
 * A manifest a long-running process looks things up in without holding its records: the daemon
 * keeps the header (policy, image, packages) and asks for the few records an event batch needs.
 * 266 bytes of heap per path held the parsed manifest in the daemon before (~480 MB at 1M paths).
 */
export interface ManifestIndex {
  readonly header: ManifestHeader;
  /** The manifest file the records come from (a full scan's child reads it itself). */
  readonly file: string;
  /** The manifest holds no file records at all (KIWI, SBOM): `diff` reads it as package-only. */
  readonly packageOnly: boolean;
  /**
   * A manifest cut to what a batch over `paths` and `subtrees` compares: their records, every
   * symbolic link (`diffInScope` follows them) and one record as an anchor, so the cut of a
   * manifest with files never reads as package-only.
   */
  cut(paths: readonly string[], subtrees: readonly string[]): Manifest;
  /** The record type of `p`, if the manifest has a record of it. */
  typeOf(p: string): FileType | undefined;
  /** Paths of the records owned by one of `packages` (`ecosystem:name`). */
  ownedBy(packages: ReadonlySet<string>): string[];
}

export function isManifestIndex(m: Manifest | ManifestIndex): m is ManifestIndex {
  return 'cut' in m;
}

/** Over a manifest already in memory (tests, the CLI's one-shot commands). */
export function memoryIndex(manifest: Manifest, file = ''): ManifestIndex {
  const { files, ...header } = manifest;
  let types: Map<string, FileType> | undefined;
  return {
    header,
    file,
    packageOnly: files.length === 0,
    cut(paths, subtrees) {
      const exact = new Set(paths);
      const keep = files.filter((f, i) => i === 0 || f.type === 'symlink' || exact.has(f.path) || subtrees.some((s) => isUnder(f.path, s)));
      return { ...header, files: keep };
    },
    typeOf(p) {
      types ??= new Map(files.map((f) => [f.path, f.type]));
      return types.get(p);
    },
    ownedBy: (packages) => files.filter((f) => f.owner && packages.has(`${f.owner.ecosystem}:${f.owner.name}`)).map((f) => f.path),
  };
}

const INSERT_BATCH = 5000;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS manifest_index (id INTEGER PRIMARY KEY, file TEXT NOT NULL UNIQUE, version TEXT NOT NULL, header TEXT NOT NULL, count INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS manifest_records (
    manifest INTEGER NOT NULL,
    path TEXT NOT NULL,
    type TEXT NOT NULL,
    owner TEXT,
    record TEXT NOT NULL,
    PRIMARY KEY (manifest, path)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS manifest_records_owner ON manifest_records (manifest, owner) WHERE owner IS NOT NULL;
  CREATE INDEX IF NOT EXISTS manifest_records_links ON manifest_records (manifest, type) WHERE type = 'symlink';
`;

interface IndexRow {
  id: number;
  version: string;
  header: string;
  count: number;
}

/** The version of a manifest file its index is kept for: path, size, mtime and inode. */
function fileVersion(absolute: string): string {
  const st = statSync(absolute);
  return `${st.size}:${st.mtimeMs}:${st.ino}`;
}

/**
 * Loads the records of the manifest `file` into the state database `db`, unless this version of
 * the file (its size, mtime and inode) is loaded already, by streaming it: loading never holds
 * more than a batch. The daemon runs this in a child process (index-loader.ts): parsing and
 * inserting 100k records left ~37 MB of allocator memory behind in the process that did it.
 */
export async function loadManifestIndex(db: Db, file: string): Promise<void> {
  db.exec(SCHEMA);
  const absolute = path.resolve(file);
  const version = fileVersion(absolute);
  const row = db.prepare('SELECT id, version, header, count FROM manifest_index WHERE file = ?').get(absolute) as IndexRow | undefined;
  if (row && row.version === version) return;
  const source = await openManifestSource(absolute);
  if (row) dropIndex(db, row.id);
  const id = Number(db.prepare("INSERT INTO manifest_index (file, version, header, count) VALUES (?, '', ?, 0)").run(absolute, JSON.stringify(source.header)).lastInsertRowid);
  const put = db.prepare('INSERT OR REPLACE INTO manifest_records (manifest, path, type, owner, record) VALUES (?, ?, ?, ?, ?)');
  const write = db.transaction((records: FileRecord[]) => {
    for (const r of records) put.run(id, r.path, r.type, r.owner ? `${r.owner.ecosystem}:${r.owner.name}` : null, JSON.stringify(r));
  });
  let count = 0;
  let pending: FileRecord[] = [];
  for await (const batch of source.records()) {
    pending.push(...batch);
    count += batch.length;
    if (pending.length >= INSERT_BATCH) {
      write(pending);
      pending = [];
    }
  }
  write(pending);
  // Marked complete last: a load cut short is loaded again next time.
  db.prepare('UPDATE manifest_index SET version = ?, count = ? WHERE id = ?').run(version, count, id);
}

function dropIndex(db: Db, id: number): void {
  db.transaction(() => {
    db.prepare('DELETE FROM manifest_records WHERE manifest = ?').run(id);
    db.prepare('DELETE FROM manifest_index WHERE id = ?').run(id);
  })();
}

/**
 * Drops the index of every manifest file but `keep` (a re-baseline leaves the one it replaced
 * behind). Returns the files whose index was dropped.
 */
export function dropManifestIndexes(db: Db, keep: readonly string[]): string[] {
  db.exec(SCHEMA);
  const kept = new Set(keep.map((f) => path.resolve(f)));
  const rows = db.prepare('SELECT id, file FROM manifest_index').all() as Array<{ id: number; file: string }>;
  const dropped = rows.filter((r) => !kept.has(r.file));
  for (const r of dropped) dropIndex(db, r.id);
  return dropped.map((r) => r.file);
}

/**
 * The index of the manifest `file` in the state database `db`, loaded first when this version of
 * the file is not (see loadManifestIndex).
 */
export async function openManifestIndex(db: Db, file: string): Promise<ManifestIndex> {
  await loadManifestIndex(db, file);
  const absolute = path.resolve(file);
  const { id, header: headerText, count } = db.prepare('SELECT id, version, header, count FROM manifest_index WHERE file = ?').get(absolute) as IndexRow;
  const header = JSON.parse(headerText) as ManifestHeader;
  const all = <T>(s: Statement, ...args: unknown[]): T[] => s.all(...args) as T[];
  const exact = db.prepare('SELECT record FROM manifest_records WHERE manifest = ? AND path = ?').pluck();
  // Below `dir`: the paths from `dir/` up to `dir0` ('0' follows '/' in byte order).
  const below = db.prepare('SELECT record FROM manifest_records WHERE manifest = ? AND path > ? AND path < ?').pluck();
  const links = db.prepare("SELECT record FROM manifest_records WHERE manifest = ? AND type = 'symlink'").pluck();
  const first = db.prepare('SELECT record FROM manifest_records WHERE manifest = ? ORDER BY path LIMIT 1').pluck();
  const type = db.prepare('SELECT type FROM manifest_records WHERE manifest = ? AND path = ?').pluck();
  const owned = db.prepare('SELECT path FROM manifest_records WHERE manifest = ? AND owner = ?').pluck();
  return {
    header,
    file: absolute,
    packageOnly: count === 0,
    cut(paths, subtrees) {
      const texts = new Set<string>();
      const add = (t: unknown): void => void (typeof t === 'string' && texts.add(t));
      add(first.get(id));
      for (const t of all<string>(links, id)) add(t);
      for (const p of paths) add(exact.get(id, p));
      for (const s of subtrees) {
        if (s === '/') {
          for (const t of all<string>(below, id, '', '\uffff')) add(t);
          continue;
        }
        add(exact.get(id, s));
        for (const t of all<string>(below, id, `${s}/`, `${s}0`)) add(t);
      }
      return { ...header, files: [...texts].map((t) => JSON.parse(t) as FileRecord).sort(compareRecordPaths) };
    },
    typeOf: (p) => type.get(id, p) as FileType | undefined,
    ownedBy: (packages) => [...packages].flatMap((k) => all<string>(owned, id, k)),
  };
}
