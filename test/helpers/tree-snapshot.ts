// Every path of a tree with what a byte-for-byte comparison needs: to prove a tool left it alone.
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';

/** Every path of a tree with type, mode, owner, mtime and content digest. */
export function snapshot(root: string, opts: { dirMtimes: boolean } = { dirMtimes: true }): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    const full = path.join(root, rel);
    const st = lstatSync(full);
    let what = `${st.mode.toString(8)} ${st.uid}:${st.gid}`;
    if (opts.dirMtimes || !st.isDirectory()) what += ` ${st.mtimeMs}`;
    if (st.isSymbolicLink()) what += ` -> ${readlinkSync(full)}`;
    else if (st.isFile()) what += ` ${createHash('sha256').update(readFileSync(full)).digest('hex')}`;
    out.set(rel === '' ? '/' : `/${rel}`, what);
    if (st.isDirectory()) for (const name of readdirSync(full)) walk(path.join(rel, name));
  };
  walk('');
  return out;
}

/** `added /x`, `removed /y`, `changed /z` between two snapshots. */
export function diffSnapshots(a: Map<string, string>, b: Map<string, string>, ignore: (p: string) => boolean = () => false): string[] {
  const changes: string[] = [];
  for (const [p, v] of a) if (!ignore(p) && b.get(p) !== v) changes.push(`${b.has(p) ? 'changed' : 'removed'} ${p}`);
  for (const p of b.keys()) if (!ignore(p) && !a.has(p)) changes.push(`added ${p}`);
  return changes;
}
