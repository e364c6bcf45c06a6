import { constants } from 'node:buffer';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { QuicksandError } from '../../shared/errors.js';
import type { Manifest } from '../../shared/manifest.js';

/** Reads a manifest file (plain or gzipped JSON) and validates it. Every failure names the file. */
export async function readManifestFile(file: string): Promise<Manifest> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new QuicksandError('MANIFEST_NOT_FOUND', `manifest ${file} does not exist: build one with \`quicksand-agent manifest --root DIR --out ${file}\``);
    if (code === 'EISDIR') throw new QuicksandError('MANIFEST_UNREADABLE', `manifest ${file} is a directory, not a file`);
    throw new QuicksandError('MANIFEST_UNREADABLE', `cannot read manifest ${file}: ${(err as Error).message}`);
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      // Held to the longest text JSON.parse could be given: a crafted file that inflates to
      // gigabytes stops there, not at the end of memory.
      bytes = gunzipSync(bytes, { maxOutputLength: constants.MAX_STRING_LENGTH });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new QuicksandError('MANIFEST_UNREADABLE', `manifest ${file} inflates to more than ${Math.floor(constants.MAX_STRING_LENGTH / 1024 ** 2)} MiB, more than one JSON document can hold`);
      }
      throw new QuicksandError('MANIFEST_UNREADABLE', `manifest ${file} is gzipped but the data is damaged or cut short`);
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    const hint = bytes.length === 0 ? 'the file is empty' : (err as Error).message;
    throw new QuicksandError('MANIFEST_UNREADABLE', `manifest ${file} is not valid JSON (${hint}); was it cut short while being written?`);
  }
  // Loaded here, not at the top: commands that only write manifests never load the schema.
  const { parseManifest } = await import('../../shared/manifest.js');
  return parseManifest(value, `manifest ${file}`);
}

/** Writes atomically (temp file + rename) so a crash never leaves a truncated manifest; `.gz` gzips. */
export async function writeManifestFile(file: string, manifest: Manifest): Promise<void> {
  const json = Buffer.from(`${JSON.stringify(manifest)}\n`);
  const data = file.endsWith('.gz') ? gzipSync(json) : json;
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, data, { mode: 0o644 });
    await rename(tmp, file);
  } catch (err) {
    throw new QuicksandError('OUTPUT_UNWRITABLE', `cannot write manifest ${file}: ${(err as Error).message}`);
  }
}
