import { createHash } from 'node:crypto';
import { constants as C } from 'node:fs';
import { open } from 'node:fs/promises';
import type { DigestAlgo, OwnedFile } from '../collect/types.js';
import type { Verdict } from './differ.js';
import type { ObservedFile } from '../fingerprint/walk.js';
import type { Root } from '../root.js';

/**
 * Checks files against their package database's own digest, as `debsums` and `rpm -Va` do.
 * A sha256 database digest compares with the fingerprint directly; md5/sha1 need a second read,
 * which is why only the files `selectForVerification` picked come here.
 */
export async function verifyAgainstPackages(root: Root, files: readonly ObservedFile[], owned: ReadonlyMap<string, OwnedFile>): Promise<Map<string, Verdict>> {
  const verdicts = new Map<string, Verdict>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const file = files[next++]!;
      const digest = owned.get(file.path)?.digest;
      if (!digest) continue;
      const actual = digest.algo === 'sha256' ? file.sha256 : await hashWith(digest.algo, root.hostPath(file.path));
      if (actual !== undefined) verdicts.set(file.path, actual === digest.hex.toLowerCase() ? 'match' : 'mismatch');
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return verdicts;
}

async function hashWith(algo: Exclude<DigestAlgo, 'sha256'>, file: string): Promise<string | undefined> {
  let fh;
  try {
    fh = await open(file, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    if (!(await fh.stat()).isFile()) return undefined;
    const hash = createHash(algo);
    for await (const chunk of fh.createReadStream({ autoClose: false, highWaterMark: 256 * 1024 })) hash.update(chunk as Buffer);
    return hash.digest('hex');
  } catch {
    return undefined; // the fingerprint already reported why it could not be read
  } finally {
    await fh?.close();
  }
}
