import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import type { FileRecord, Manifest } from '../../shared/manifest.js';
import { LIMITS } from '../../shared/limits.js';
import { defaultPolicy } from '../../shared/policy.js';
import { inflateWhole, memorySource, openManifestSource, writeManifestStream } from './stream.js';

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

/** The gzip trailer's size field (ISIZE, the last 4 bytes) set to `claim`, in a copy of the file. */
function withTrailerClaim(file: string, claim: number, out: string): string {
  const bytes = readFileSync(file);
  bytes.writeUInt32LE(claim, bytes.length - 4);
  writeFileSync(out, bytes);
  return out;
}

describe('reading a gzipped manifest in one buffer, within a limit', () => {
  const MiB = 1024 * 1024;

  it('stops inflating at the limit and asks for a stream, whatever the trailer claims: no gigabyte held', () => {
    // 16 gzip members of 64 MiB of zeros each: 1 GiB inflated from ~1 MB, the last member's
    // trailer claiming 64 MiB (within the limit), so only the limit stops the inflate.
    const bomb = Buffer.concat(Array.from({ length: 16 }, () => gzipSync(Buffer.alloc(64 * MiB), { level: 1 })));
    const peakBefore = process.resourceUsage().maxRSS * 1024;
    expect(inflateWhole(bomb, 64 * MiB, 'bomb.json.gz')).toBeUndefined();
    // Without the limit this holds the gigabyte (and joins it into a second one).
    expect(process.resourceUsage().maxRSS * 1024 - peakBefore).toBeLessThan(512 * MiB);
    const small = gzipSync(Buffer.from('{"a":1}\n'));
    expect(inflateWhole(small, 64 * MiB, 'small.json.gz')?.toString()).toBe('{"a":1}\n');
    expect(() => inflateWhole(small.subarray(0, small.length - 6), 64 * MiB, 'cut.json.gz')).toThrow(
      expect.objectContaining({ code: 'MANIFEST_UNREADABLE', message: 'manifest cut.json.gz is gzipped but the data is damaged or cut short' }),
    );
  });

  it('streams a manifest that inflates past 64 MiB and gives every record', async () => {
    // 17,000 records of 4,000-byte paths: ~68 MiB inflated, a few hundred KiB on disk.
    const long: FileRecord[] = Array.from({ length: 17_000 }, (_, i) => ({ path: `/d/${'x'.repeat(3990)}${String(i).padStart(6, '0')}`, type: 'file', mode: '0644', uid: 0, gid: 0, size: 1, sha256: 'a'.repeat(64) }));
    const manifest = { ...manifestWith(1), files: long };
    const { files: _f, ...header } = manifest;
    const file = path.join(dir, 'past-the-limit.json.gz');
    await writeManifestStream(file, header, memorySource(manifest).records());
    const got = await readAll(file);
    expect(got.records.length).toBe(long.length);
    expect(got.paths).toEqual(long.map((f) => f.path));
    // A trailer claiming a small size changes nothing but the error: the data no longer checks out.
    const lying = withTrailerClaim(file, 1000, path.join(dir, 'past-the-limit-lying.json.gz'));
    await expect(readAll(lying)).rejects.toMatchObject({ code: 'MANIFEST_UNREADABLE', message: `manifest ${lying} is gzipped but the data is damaged or cut short` });
  });

  it('refuses a small manifest whose trailer claims 4 GiB with a clear error, not an allocation of it', async () => {
    const manifest = manifestWith(1);
    const { files: _f, ...header } = manifest;
    const file = path.join(dir, 'honest.json.gz');
    await writeManifestStream(file, header, memorySource(manifest).records());
    const lying = withTrailerClaim(file, 0xffffffff, path.join(dir, 'claims-4gib.json.gz'));
    const peakBefore = process.resourceUsage().maxRSS * 1024;
    await expect(readAll(lying)).rejects.toMatchObject({ code: 'MANIFEST_UNREADABLE', message: `manifest ${lying} is gzipped but the data is damaged or cut short` });
    expect(process.resourceUsage().maxRSS * 1024 - peakBefore).toBeLessThan(256 * MiB);
  });
});
