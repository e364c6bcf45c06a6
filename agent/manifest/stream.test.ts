import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FileRecord, Manifest } from '../../shared/manifest.js';
import { LIMITS } from '../../shared/limits.js';
import { defaultPolicy } from '../../shared/policy.js';
import { memorySource, openManifestSource, writeManifestStream } from './stream.js';

const dir = mkdtempSync(path.join(tmpdir(), 'qs-stream-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const files: FileRecord[] = [
  { path: '/etc', type: 'dir', mode: '0755', uid: 0, gid: 0 },
  { path: '/etc/a b', type: 'file', mode: '0644', uid: 0, gid: 0, size: 1, sha256: 'a'.repeat(64) },
  { path: '/etc/q"uote', type: 'file', mode: '0644', uid: 0, gid: 0, size: 1, sha256: 'b'.repeat(64) },
  { path: '/etc/raw', rawPath: Buffer.from('/etc/raw\xff', 'latin1').toString('base64'), type: 'file', mode: '0644', uid: 0, gid: 0, size: 1, sha256: 'c'.repeat(64) },
  { path: '/etc/z', type: 'symlink', mode: '0777', uid: 0, gid: 0, target: 'a b' },
];

function manifestWith(packages: number): Manifest {
  return {
    schema: 'quicksand.manifest/v1',
    image: { name: 'x', version: '1', createdAt: '2026-12-01T00:00:00.000Z', source: 'root' },
    policy: defaultPolicy(),
    packages: Array.from({ length: packages }, (_, i) => ({ ecosystem: 'dpkg' as const, name: `package-with-a-long-name-${i}`, version: `1.${i}` })),
    files,
  };
}

async function readAll(file: string): Promise<{ packages: number; records: FileRecord[]; paths: string[] }> {
  const source = await openManifestSource(file);
  const records: FileRecord[] = [];
  for await (const batch of source.records()) records.push(...batch);
  const paths: string[] = [];
  for await (const batch of source.batches()) for (let i = 0; i < batch.length; i++) paths.push(batch.path(i));
  return { packages: source.header.packages.length, records, paths };
}

/** A manifest of `packages` packages and the test's files, written as `name` and read back. */
async function writtenAndRead(name: string, packages: number): ReturnType<typeof readAll> {
  const manifest = manifestWith(packages);
  const { files: _f, ...header } = manifest;
  const file = path.join(dir, name);
  await writeManifestStream(file, header, memorySource(manifest).records());
  return readAll(file);
}

describe('reading a streamed manifest line by line', () => {
  it('reads a first line that spans many chunks of the stream', async () => {
    // ~8 MB of header: past the size read in one go, so it comes in 256 KiB pieces.
    const got = await writtenAndRead('long-header.json', 120_000);
    expect(got.packages).toBe(120_000);
    expect(got.records).toEqual(files);
    expect(got.paths).toEqual(files.map((f) => f.path));
  });

  it('gives every record and its path alike whether a path is cut from the line or parsed', async () => {
    const got = await writtenAndRead('small.json.gz', 1);
    expect(got.records).toEqual(files);
    expect(got.paths).toEqual(files.map((f) => f.path));
  });

  it('refuses a line longer than the limit, naming the file, the line and the limit', async () => {
    const file = path.join(dir, 'one-long-line.json');
    writeFileSync(file, Buffer.alloc(LIMITS.manifestLine + 1024 * 1024, 0x61));
    await expect(openManifestSource(file)).rejects.toMatchObject({
      code: 'MANIFEST_UNREADABLE',
      message: `manifest ${file}, line 1: longer than 64 MiB, the most one line of a manifest may hold`,
    });
  });
});
