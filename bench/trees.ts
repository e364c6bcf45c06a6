// The trees the scan and growth benchmarks measure, built once and cached outside the repo
// (QUICKSAND_BENCH_CACHE, default /var/tmp/quicksand-bench). Each is built in a temporary folder
// and renamed into place, so a half-built tree is never used.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { copyTree, ensureMinbase, ensureWithLanguages } from '../test/helpers/debian-root.js';

export const CACHE = process.env.QUICKSAND_BENCH_CACHE ?? '/var/tmp/quicksand-bench';
// Bump when a generated layout changes.
const LAYOUT = 'v1';
export const PER_DIR = 100;

function buildOnce(dir: string, build: (tmp: string) => void): string {
  if (existsSync(dir)) return dir;
  mkdirSync(CACHE, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  build(tmp);
  renameSync(tmp, dir);
  return dir;
}

/**
 * ~106k paths with real file sizes (1.8 GiB): the debootstrap tree with the language packages
 * (16k paths) plus six copies of its /usr under /opt, so the folder shape is a real system's.
 */
export function ensureUsrCopies(copies = 6): string {
  const base = ensureWithLanguages();
  return buildOnce(path.join(CACHE, `debian-langs-usr${copies + 1}-${LAYOUT}`), (tmp) => {
    execFileSync('cp', ['-a', base, tmp]);
    for (let i = 1; i <= copies; i++) execFileSync('cp', ['-a', path.join(tmp, 'usr'), path.join(tmp, `opt/usr${i}`)]);
  });
}

/**
 * A root with `count` regular files under /usr/share/synthetic, 100 per folder, 100 folders per
 * folder above them, each 100 to 1100 bytes of deterministic content.
 */
export function ensureSynthetic(count: number): string {
  return buildOnce(path.join(CACHE, `synthetic-${LAYOUT}-${count}`), (tmp) => {
    const base = path.join(tmp, 'usr/share/synthetic');
    const content = Buffer.alloc(1100);
    for (let i = 0; i < count; i++) {
      const leaf = Math.floor(i / PER_DIR);
      const folder = path.join(base, `d${Math.floor(leaf / PER_DIR)}`, `e${leaf % PER_DIR}`);
      if (i % PER_DIR === 0) mkdirSync(folder, { recursive: true });
      const size = 100 + ((i * 7919) % 1000);
      content.writeUInt32LE(i, 0);
      content.fill(i % 251, 4, size);
      const fd = openSync(path.join(folder, `f${i % PER_DIR}`), 'w', 0o644);
      writeSync(fd, content, 0, size);
      closeSync(fd);
    }
    mkdirSync(path.join(tmp, 'etc'), { recursive: true });
  });
}

/** A root whose cost is all bytes: `files` files of `mib` MiB each, under /usr/share/big. */
export function ensureBytesTree(files: number, mib: number): string {
  return buildOnce(path.join(CACHE, `bytes-${LAYOUT}-${files}x${mib}M`), (tmp) => {
    const base = path.join(tmp, 'usr/share/big');
    mkdirSync(base, { recursive: true });
    const chunk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < files; i++) {
      const fd = openSync(path.join(base, `blob${i}`), 'w', 0o644);
      for (let m = 0; m < mib; m++) {
        chunk.fill((i * 31 + m) % 251);
        chunk.writeUInt32LE(i * mib + m, 0);
        writeSync(fd, chunk);
      }
      closeSync(fd);
    }
    mkdirSync(path.join(tmp, 'etc'), { recursive: true });
  });
}

/**
 * A tree by the name the benchmarks print: 6k = a private copy of the debootstrap minbase (removed
 * after), 106k = ensureUsrCopies, 1m = one million small files. The copy is left to age past the
 * racy window by the caller.
 */
export function ensureNamedTree(name: string): { dir: string; remove: () => void } {
  if (name === '6k') return copyTree(ensureMinbase());
  const keep = (dir: string): { dir: string; remove: () => void } => ({ dir, remove: () => undefined });
  if (name === '106k') return keep(ensureUsrCopies());
  if (name === '1m') return keep(ensureSynthetic(1_000_000));
  throw new Error(`--trees: unknown tree ${name} (6k, 106k or 1m)`);
}

/**
 * The bytes-heavy tree: ~2 GiB in files of the sizes a system's /usr and /opt hold (log-uniform
 * from 4 KiB to 64 MiB: libraries, binaries, archives, data files), 20 per folder, under
 * /opt/data. Content is deterministic and differs per file, so no two digests are alike.
 */
export function ensureBytesHeavy(totalMib = 2048): string {
  return buildOnce(path.join(CACHE, `bytes-heavy-${LAYOUT}-${totalMib}M`), (tmp) => {
    const base = path.join(tmp, 'opt/data');
    const chunk = Buffer.alloc(1024 * 1024);
    let left = totalMib * 1024 * 1024;
    for (let i = 0; left > 0; i++) {
      // Log-uniform sizes from a fixed sequence (golden-ratio steps), 2^12 .. 2^26 bytes.
      const size = Math.min(left, Math.round(2 ** (12 + 14 * ((i * 0.6180339887) % 1))));
      const folder = path.join(base, `d${Math.floor(i / 20)}`);
      if (i % 20 === 0) mkdirSync(folder, { recursive: true });
      const fd = openSync(path.join(folder, `f${i % 20}`), 'w', 0o644);
      for (let at = 0; at < size; at += chunk.length) {
        chunk.fill((i * 31 + at / chunk.length) % 251);
        chunk.writeUInt32LE(i, 0);
        writeSync(fd, chunk, 0, Math.min(chunk.length, size - at));
      }
      closeSync(fd);
      left -= size;
    }
    mkdirSync(path.join(tmp, 'etc'), { recursive: true });
  });
}
