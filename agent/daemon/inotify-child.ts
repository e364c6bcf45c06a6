import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { ChildProcessByStdio } from 'node:child_process';
import { accessSync, constants, lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { FolderWatch, subfolderNames } from './folder-watch.js';
import type { DirWatcher, FolderWatchOptions } from './folder-watch.js';

const READER = 'inotifywait';
/** The events Node's own fs.watch asks inotify for: what changes an entry, never a read of it. */
const EVENTS = 'attrib,create,modify,delete,delete_self,move_self,moved_from,moved_to';

/** The path of `inotifywait` (inotify-tools) on $PATH, or undefined. */
export function findInotifyReader(envPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of envPath.split(':')) {
    if (dir === '') continue;
    const file = path.join(dir, READER);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * The folder watches held by one `inotifywait -m -r` child process (inotify-tools, C) instead of
 * one `fs.watch` per folder in the daemon: the daemon then holds nothing per folder, and the
 * reader holds ~0.3 KB per folder where fs.watch took ~1 KB of the daemon's own memory (5.7 MB
 * RSS for the reader on 13.5k folders, measured). It attaches watches to new folders itself and
 * drops those of folders that went away. Events come as NUL-separated fields, so any name is read
 * whole. The package database folders outside the trees (`single`) keep an `fs.watch` each here.
 *
 * Folders ignored when the watch starts get no watch (`@` exclusions, found by one crawl); one
 * made later below a watched folder does get one, and its events are dropped by the caller's
 * policy as every ignored path's are. `maxDirs` is checked at that crawl.
 */
export class InotifyChildWatch extends EventEmitter implements DirWatcher {
  readonly ready: Promise<void>;
  private child: ChildProcessByStdio<Writable, Readable, Readable> | undefined;
  private readonly singles: FolderWatch;
  // Paths the last event named as a folder made, moved or removed: read whole (see reconcile).
  private readonly whole = new Set<string>();
  private isClosed = false;

  constructor(
    private readonly opts: FolderWatchOptions,
    private readonly reader = findInotifyReader() ?? READER,
  ) {
    super();
    this.singles = new FolderWatch({ trees: [], single: opts.single, ignored: opts.ignored });
    this.singles.on('change', (dir: string, name: string) => this.emit('change', dir, name));
    this.singles.on('error', (err: unknown) => this.fail(err));
    this.ready = this.start().catch((err: unknown) => this.fail(err));
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Folders the reader holds a watch on (asked of the kernel, through /proc). */
  watchedDirs(): number {
    const pid = this.child?.pid;
    if (pid === undefined || this.isClosed) return 0;
    let n = 0;
    try {
      for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
        n += (readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').match(/^inotify wd:/gm) ?? []).length;
      }
    } catch {
      return 0; // it ended meanwhile
    }
    return n;
  }

  /** The reader attaches and drops watches itself: only says whether `p`'s whole subtree changed. */
  async reconcile(p: string): Promise<boolean> {
    return this.whole.delete(p);
  }

  close(): void {
    this.isClosed = true;
    this.singles.close();
    this.child?.kill('SIGTERM');
    this.child = undefined;
  }

  private async start(): Promise<void> {
    // A link to a folder (merged-/usr's /bin) is never followed: its target is watched as itself.
    const trees = this.opts.trees.filter(isFolder);
    const excluded = this.crawl(trees);
    await this.singles.ready;
    if (this.isClosed || trees.length === 0) return;
    const child = spawn(this.reader, ['-m', '-r', '-P', '-e', EVENTS, '--fromfile', '-', '--format', '%w%0%f%0%e%0', '--no-newline'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    let stderr = '';
    let established!: () => void;
    const up = new Promise<void>((resolve) => (established = resolve));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-4000);
      if (stderr.includes('Watches established.')) established();
    });
    let rest: Buffer = Buffer.alloc(0);
    child.stdout.on('data', (d: Buffer) => {
      rest = this.parse(rest.length === 0 ? d : Buffer.concat([rest, d]));
    });
    child.once('error', (err) => {
      established();
      this.fail(err);
    });
    child.once('exit', (code, signal) => {
      established();
      if (this.isClosed || this.child !== child) return;
      const limit = /upper limit on inotify watches/.test(stderr);
      const message = `${READER} exited (${signal ?? code}): ${stderr.trim().split('\n').filter((l) => !/^(Setting up|Watches established)/.test(l)).join(' ') || 'no message'}`;
      this.fail(Object.assign(new Error(message), limit ? { code: 'ENOSPC' } : {}));
    });
    child.stdin.on('error', () => undefined); // it ended first: its exit says why
    child.stdin.end([...trees, ...excluded.map((d) => `@${d}`)].map((p) => `${p}\n`).join(''));
    await up;
  }

  /**
   * The folders below the trees that are ignored, each the top of an ignored subtree; throws
   * EWATCHLIMIT past `maxDirs` folders to watch. Holds one folder's names at a time.
   */
  private crawl(trees: readonly string[]): string[] {
    for (const p of [...trees, ...this.opts.single]) {
      if (p.includes('\n')) throw Object.assign(new Error(`a folder name holds a line break: ${JSON.stringify(p)}`), { code: 'EBADNAME' });
    }
    const max = this.opts.maxDirs ?? Number.POSITIVE_INFINITY;
    const excluded: string[] = [];
    let count = this.opts.single.length;
    const stack = [...trees];
    while (stack.length > 0 && !this.isClosed) {
      const dir = stack.pop()!;
      if (++count > max) throw Object.assign(new Error(`more than ${max} folders to watch`), { code: 'EWATCHLIMIT' });
      const names = subfolderNames(dir);
      if (names === undefined) continue; // gone meanwhile
      for (const name of names) {
        const sub = path.join(dir, name);
        if (this.opts.ignored(sub)) excluded.push(sub);
        else if (sub.includes('\n')) throw Object.assign(new Error(`a folder name holds a line break: ${JSON.stringify(sub)}`), { code: 'EBADNAME' });
        else stack.push(sub);
      }
    }
    return excluded;
  }

  /** Emits each whole event (folder, name, events: three NUL-ended fields); returns the unfinished tail. */
  private parse(buf: Buffer): Buffer {
    let start = 0;
    for (;;) {
      const a = buf.indexOf(0, start);
      const b = a < 0 ? -1 : buf.indexOf(0, a + 1);
      const c = b < 0 ? -1 : buf.indexOf(0, b + 1);
      if (c < 0) return buf.subarray(start);
      const dir = buf.toString('utf8', start, a).replace(/\/+$/, '') || '/';
      const name = buf.toString('utf8', a + 1, b);
      const events = buf.toString('utf8', b + 1, c).split(',');
      start = c + 1;
      if (events.includes('Q_OVERFLOW')) {
        this.fail(Object.assign(new Error('the kernel dropped inotify events (queue overflow)'), { code: 'EOVERFLOW' }));
        continue;
      }
      const p = name === '' ? dir : path.join(dir, name);
      const folderChange = events.includes('ISDIR') && events.some((e) => e === 'CREATE' || e === 'MOVED_TO' || e === 'MOVED_FROM' || e === 'DELETE');
      if (folderChange || events.includes('DELETE_SELF') || events.includes('MOVE_SELF')) this.whole.add(p);
      this.emit('change', dir, name === '' ? path.basename(dir) : name);
    }
  }

  private fail(err: unknown): void {
    if (this.isClosed) return;
    this.emit('error', err);
  }
}

function isFolder(p: string): boolean {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}
