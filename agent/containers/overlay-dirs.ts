import { readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { formatIssues } from '../../shared/schema-errors.js';

/**
 * The overlay folder layout Docker's overlay2 graph driver and containers/storage's overlay
 * driver share (moby daemon/graphdriver/overlay2, containers/storage drivers/overlay):
 * `<home>/<layer id>/diff` holds the layer, `<home>/<layer id>/link` its short name,
 * `<home>/l/<short name>` is a link to `../<layer id>/diff`, and `<home>/<layer id>/lower` names
 * the layers below it, nearest first: `l/<short>:l/<short>:…` (the bottom layer has none).
 * Resolves a layer's lowers to their `diff` folders; every one must stay inside `home`.
 */
export async function lowersOf(home: string, layerId: string): Promise<string[]> {
  const text = await readSmall(path.join(home, layerId, 'lower'));
  if (text === null) return [];
  const out: string[] = [];
  for (const entry of text.trim().split(':')) {
    if (entry === '') continue;
    const link = path.join(home, entry);
    if (!isInside(link, home)) throw new Error(`${home}/${layerId}/lower names ${entry}, outside the layer store`);
    // Docker writes `l/<short>` (a link to `../<id>/diff`); a link that is gone (a crash) is
    // looked up by the layers' own `link` files instead, as the drivers themselves repair it.
    let diff: string;
    try {
      diff = path.resolve(path.dirname(link), await readlink(link));
    } catch {
      throw new Error(`${link} (a lower layer of ${layerId}) cannot be read`);
    }
    if (!isInside(diff, home)) throw new Error(`${link} leads outside the layer store`);
    out.push(diff);
  }
  return out;
}

export function isInside(p: string, dir: string): boolean {
  const rel = path.relative(dir, p);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** A metadata file's text, null when absent; a file past `max` bytes is refused, not read. */
export async function readSmall(file: string, max = 4 * 1024 * 1024): Promise<string | null> {
  try {
    const st = await stat(file);
    if (!st.isFile()) return null;
    if (st.size > max) throw new Error(`${file} is ${st.size} bytes, more than the ${max} a runtime's metadata file may have`);
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

/** Parses a runtime's JSON metadata file with a schema; the error names the file and the field. */
export function parseJsonFile<T>(text: string, file: string, schema: z.ZodType<T>): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not JSON (half-written?): ${(err as Error).message}`);
  }
  const r = schema.safeParse(value);
  if (!r.success) throw new Error(`${file} is not as expected:\n${formatIssues(r.error)}`);
  return r.data;
}
