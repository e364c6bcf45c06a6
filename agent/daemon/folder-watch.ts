import { EventEmitter } from 'node:events';
import { lstatSync, readdirSync, watch as fsWatch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import path from 'node:path';

export interface FolderWatchOptions {
  /** Folders watched with everything below them (host paths that exist). */
  trees: readonly string[];
  /** Folders watched alone, nothing below them (a package database's folder). */
  single: readonly string[];
  /** True for a folder (host path) that gets no watch, nor anything below it. */
  ignored: (dir: string) => boolean;
  /** More folders than this: an 'error' with code `EWATCHLIMIT` instead of the watch past it. */
  maxDirs?: number;
}

/**
 * What the realtime watch needs of a folder watcher. Emits `change` (dir, name): something
 * happened to `name` in the watched folder `dir` (name is the folder's own basename for events on
 * the folder itself); `error` (err): a watch could not be attached or failed (ENOSPC when the
 * kernel's inotify watches run out, EACCES, EWATCHLIMIT); the caller then closes it.
 */
export interface DirWatcher extends EventEmitter {
  /** Resolves once the first crawl has attached every watch. */
  readonly ready: Promise<void>;
  readonly closed: boolean;
  /** Folders watched with their trees (the single folders not counted). */
  watchedDirs(): number;
  /**
   * Looks at `p` again after an event named it; true when `p` is a folder whose whole subtree
   * changed (it appeared, was replaced, or went away with everything below it).
   */
  reconcile(p: string): Promise<boolean>;
  close(): void;
}

/**
 * One inotify watch per folder through Node's own `fs.watch`, and nothing else per path: no
 * tree of entries, no stats. Replaces chokidar, which kept every folder's entries in the heap
 * (451 MB RSS idle on a 106k-path tree where this holds ~1.1 KB per folder, measured with
 * `fs.watch` on 1,934 real folders).
 *
 * Emits `change` (dir, name): something happened to `name` in the watched folder `dir` (name is
 * the folder's own basename for events on the folder itself); `error` (err): a watch could not be attached or failed (ENOSPC when the
 * kernel's inotify watches run out, EACCES, EWATCHLIMIT); the caller then closes it.
 * `ready` resolves once the first crawl has attached every watch.
 */
export class FolderWatch extends EventEmitter implements DirWatcher {
  readonly ready: Promise<void>;
  private readonly watchers = new Map<string, { w: FSWatcher; ino: number }>();
  private isClosed = false;
  // One listener for every watch's errors, not a closure per folder.
  private readonly onError = (err: unknown): void => this.fail(err);
  private readonly maxDirs: number;

  constructor(private readonly opts: FolderWatchOptions) {
    super();
    this.maxDirs = opts.maxDirs ?? Number.POSITIVE_INFINITY;
    this.ready = (async () => {
      for (const dir of opts.single) this.attach(dir);
      for (const dir of opts.trees) await this.addTree(dir);
    })().catch((err: unknown) => this.fail(err));
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Folders watched with their trees (the single folders not counted). */
  watchedDirs(): number {
    let n = this.watchers.size;
    for (const s of this.opts.single) if (this.watchers.has(s)) n--;
    return n;
  }

  /**
   * Looks at `p` again after an event named it: a folder that is new (or was replaced) gets its
   * watches, one that is gone loses them. Returns true when `p` is a folder whose whole subtree
   * changed (it appeared, was replaced, or went away with everything below it).
   */
  async reconcile(p: string): Promise<boolean> {
    if (this.isClosed) return false;
    let st: { isDirectory(): boolean; ino: number } | undefined;
    try {
      st = lstatSync(p);
    } catch {
      st = undefined;
    }
    const known = this.watchers.get(p);
    const dir = st?.isDirectory() === true && !this.opts.ignored(p);
    if (this.isSingle(p)) return false;
    // A known folder named by an event is watched afresh even with its old inode number: a
    // folder removed and made again may get the freed number back, and its old watches are dead.
    if (known) this.removeTree(p);
    if (!dir) return known !== undefined;
    try {
      await this.addTree(p);
    } catch (err) {
      this.fail(err);
    }
    return !known || known.ino !== st!.ino;
  }

  close(): void {
    this.isClosed = true;
    for (const { w } of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  private isSingle(p: string): boolean {
    return this.opts.single.includes(p);
  }

  /**
   * Watches `root` and every folder below it that is not ignored; links are never followed.
   * Synchronous reads, a slice at a time: `opendir`'s async iteration took 4.9 s and left 48 MB
   * of allocator arenas behind for 13.6k folders, against 1.1 KB per folder for the watch itself.
   */
  private async addTree(root: string): Promise<void> {
    const stack = [root];
    let sinceYield = 0;
    while (stack.length > 0 && !this.isClosed) {
      const dir = stack.pop()!;
      if (this.opts.ignored(dir) || !this.attach(dir)) continue;
      const names = subfolderNames(dir);
      if (names === undefined) continue; // gone meanwhile
      for (const name of names) stack.push(path.join(dir, name));
      // Events and timers are not held up for the whole crawl of a large tree.
      if (++sinceYield >= 500) {
        sinceYield = 0;
        await new Promise((r) => setImmediate(r));
      }
    }
  }

  /** One watch on `dir`; false when it vanished meanwhile or is no folder. Throws what fs.watch throws otherwise. */
  private attach(dir: string): boolean {
    if (this.isClosed || this.watchers.has(dir)) return !this.isClosed;
    if (this.watchers.size >= this.maxDirs) {
      throw Object.assign(new Error(`more than ${this.maxDirs} folders to watch`), { code: 'EWATCHLIMIT' });
    }
    let ino: number;
    let w: FSWatcher;
    try {
      const st = lstatSync(dir);
      // A link to a folder (merged-/usr's /bin) is never followed: its target is watched as itself.
      if (!st.isDirectory()) return false;
      ino = st.ino;
      w = fsWatch(dir, { persistent: true }, (_type, name) => this.emit('change', dir, name ?? path.basename(dir)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return false;
      throw err;
    }
    w.on('error', this.onError);
    this.watchers.set(dir, { w, ino });
    return true;
  }

  /** Drops the watches of `root` and of every folder below it. */
  private removeTree(root: string): void {
    const prefix = `${root}/`;
    for (const [dir, { w }] of this.watchers) {
      if (dir !== root && !dir.startsWith(prefix)) continue;
      w.close();
      this.watchers.delete(dir);
    }
  }

  private fail(err: unknown): void {
    if (this.isClosed) return;
    this.emit('error', err);
  }
}

/** Names of the folders in `dir` (links not followed); undefined when it is gone or no folder. */
export function subfolderNames(dir: string): string[] | undefined {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}
