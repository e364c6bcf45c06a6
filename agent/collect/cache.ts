// The package databases as the collectors last read them, remembered with the stat of every path
// they touched (files read, folders listed, paths stat'ed): a warm scan whose package databases
// did not change reads none of them again. The git index's idea, as the stat cache's: any write,
// chmod, rename-over or restore-with-old-mtime of one of those paths moves its ctime.
import { lstatSync, readdirSync, statSync } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { deserialize, serialize } from 'node:v8';
import type { Database as Db } from 'better-sqlite3';
import type { Root } from '../root.js';
import { openCacheDb } from '../state-db.js';

export interface PackageCache {
  /**
   * What `collect` gives for `root`: the result remembered when every path it touched last time
   * still has the stat it had, else `collect` run again (with a root that records what it
   * touches) and its result remembered. A root seen through layers (a container) is never cached.
   */
  collect<T>(root: Root, collect: (tracked: Root) => Promise<T>, canStore?: (result: T) => boolean): Promise<T>;
  /** What the last `collect` did: 'hit', 'read' (and stored), 'read-not-stored' or 'uncached'. */
  readonly last: 'hit' | 'read' | 'read-not-stored' | 'uncached' | undefined;
  close(): void;
}

/**
 * A result is not remembered when a path it read changed this recently before the collectors
 * started: on a filesystem with coarse timestamps a write right after the read could leave its
 * stat as it was (the stat cache's racy window, walk.ts).
 */
const RACY_MS = 2000;

export interface PackageCacheOptions {
  /** The racy window (default RACY_MS; tests of a tree just written shorten it). */
  racyMs?: number;
}

/**
 * The stat of one host path as a string: its lstat and, for a link, the stat of what it points
 * at (readFile and readdir follow links). An error is its code: a path absent now and there
 * later differs.
 */
export function pathSignature(p: string): { sig: string; ctimeNs: bigint } {
  let l: BigIntStats | undefined;
  try {
    // An absent path answered without an exception: a tenth of the inputs at 106k paths are
    // (cpan's and pip's candidate folders), and a thrown error costs several lstats.
    l = lstatSync(p, { bigint: true, throwIfNoEntry: false });
  } catch (err) {
    return { sig: `!${(err as NodeJS.ErrnoException).code ?? 'ERROR'}`, ctimeNs: 0n };
  }
  if (l === undefined) return { sig: '!ENOENT', ctimeNs: 0n };
  let sig = statText(l);
  let ctimeNs = l.ctimeNs;
  if (l.isSymbolicLink()) {
    try {
      const t = statSync(p, { bigint: true });
      sig += `>${statText(t)}`;
      if (t.ctimeNs > ctimeNs) ctimeNs = t.ctimeNs;
    } catch (err) {
      sig += `>!${(err as NodeJS.ErrnoException).code ?? 'ERROR'}`;
    }
  }
  return { sig, ctimeNs };
}

function statText(s: BigIntStats): string {
  return `${s.dev}:${s.ino}:${s.mode}:${s.uid}:${s.gid}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

/**
 * What a remembered result is valid for besides its inputs: the code that parsed it (the stat
 * of the collectors' own modules: an upgraded agent reads again), the root's top-level aliases
 * (`canonical`), and who reads (a file one user may not read, another may).
 */
function contextKey(root: Root & { aliases: ReadonlyMap<string, string> }): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const code: string[] = [];
  for (const dir of [here, `${here}../`, `${here}../fingerprint/`, `${here}../../shared/`]) {
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith(ext)).sort();
    } catch {
      names = [];
    }
    for (const n of names) code.push(`${n}=${pathSignature(dir + n).sig}`);
  }
  const who = [process.geteuid?.(), process.getegid?.(), ...(process.getgroups?.() ?? [])];
  return JSON.stringify({ format: 1, code, aliases: [...root.aliases], who });
}

/** Opens (creating if needed) `<stateDir>/agent.db` and the remembered package databases of one root. */
export function openPackageCache(stateDir: string, rootDir: string, opts: PackageCacheOptions = {}): PackageCache {
  return createPackageCache(openCacheDb(stateDir), rootDir, true, opts);
}

/** Over an already open database. */
export function createPackageCache(db: Db, rootDir: string, ownsDb = false, opts: PackageCacheOptions = {}): PackageCache {
  const racyNs = BigInt(opts.racyMs ?? RACY_MS) * 1_000_000n;
  // inputs: JSON [[host path, signature], ...]; result: the collectors' result, v8-serialised
  // (Maps and all), one row per root.
  db.exec('CREATE TABLE IF NOT EXISTS package_cache (root TEXT PRIMARY KEY, context TEXT NOT NULL, inputs TEXT NOT NULL, result BLOB NOT NULL)');
  const get = db.prepare('SELECT context, inputs, result FROM package_cache WHERE root = ?');
  const put = db.prepare('INSERT OR REPLACE INTO package_cache (root, context, inputs, result) VALUES (?, ?, ?, ?)');
  const drop = db.prepare('DELETE FROM package_cache WHERE root = ?');
  /** The remembered result when its context matches and every input still has its stat. */
  const remembered = (context: string): unknown => {
    try {
      const row = get.get(rootDir) as { context: string; inputs: string; result: Buffer } | undefined;
      if (row === undefined || row.context !== context) return undefined;
      if (!(JSON.parse(row.inputs) as Array<[string, string]>).every(([p, sig]) => pathSignature(p).sig === sig)) return undefined;
      return deserialize(row.result);
    } catch {
      return undefined; // a row that cannot be read is no row
    }
  };
  const cache: PackageCache & { last: PackageCache['last'] } = {
    last: undefined,
    async collect(root, collect, canStore = () => true) {
      if (root.list !== undefined || root.aliases === undefined) {
        cache.last = 'uncached';
        return collect(root);
      }
      const context = contextKey(root as Root & { aliases: ReadonlyMap<string, string> });
      const hit = remembered(context);
      if (hit !== undefined) {
        cache.last = 'hit';
        return hit as Awaited<ReturnType<typeof collect>>;
      }
      // Each path's stat is taken when the collector first asks for it, before it reads it:
      // a change after that moves the stat away from the one remembered.
      const inputs = new Map<string, string>();
      let newest = 0n;
      const startedNs = BigInt(Date.now()) * 1_000_000n;
      const tracked: Root = {
        dir: root.dir,
        aliases: root.aliases,
        canonical: (inside) => root.canonical(inside),
        hostPath: (inside) => {
          const host = root.hostPath(inside);
          if (!inputs.has(host)) {
            const { sig, ctimeNs } = pathSignature(host);
            inputs.set(host, sig);
            if (ctimeNs > newest) newest = ctimeNs;
          }
          return host;
        },
      };
      const result = await collect(tracked);
      const store = newest < startedNs - racyNs && canStore(result);
      try {
        if (store) put.run(rootDir, context, JSON.stringify([...inputs]), serialize(result));
        else drop.run(rootDir);
        cache.last = store ? 'read' : 'read-not-stored';
      } catch {
        cache.last = 'read-not-stored'; // only saves work: a busy or damaged database costs a read next time
      }
      return result;
    },
    close() {
      if (ownsDb) db.close();
    },
  };
  return cache;
}
