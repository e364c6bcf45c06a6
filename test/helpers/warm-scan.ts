// Scans of a test tree as `quicksand-agent scan` runs them (stat cache and clean paths in a state
// folder) and as a scan that compares every path, for tests that hold the two alike.
import { scanRoot, scanSource } from '../../agent/diff/scan.js';
import type { ScanOptions } from '../../agent/diff/scan.js';
import { openCleanPaths } from '../../agent/fingerprint/clean-paths.js';
import { openStatCache } from '../../agent/fingerprint/stat-cache.js';
import type { WalkStats } from '../../agent/fingerprint/walk.js';
import { readManifestFile } from '../../agent/manifest/io.js';
import { openManifestSource } from '../../agent/manifest/stream.js';
import { openRoot } from '../../agent/root.js';
import type { Report } from '../../shared/report.js';

/** The report without what differs from run to run (its time, its duration, what the cache spared). */
export function comparable(report: Report): unknown {
  const { scannedAt: _t, stats, ...rest } = report;
  return { ...rest, stats: { files: stats.files, packages: stats.packages } };
}

/** A scan of `root` against `manifest` through the stat cache and clean paths of `state`, and what its walk counted. */
export async function warmScan(root: string, manifest: string, state: string, opts: ScanOptions = {}): Promise<{ report: unknown; stats: WalkStats }> {
  const opened = await openRoot(root);
  const source = await openManifestSource(manifest);
  const cache = openStatCache(state, opened.dir);
  const clean = openCleanPaths(state, opened.dir, source.identity!()!);
  let stats: WalkStats | undefined;
  try {
    const report = await scanSource(opened, source, { cache, clean, hostname: 'h', ...opts, onStats: (s) => (stats = { ...s }) });
    return { report: comparable(report), stats: stats! };
  } finally {
    cache.close();
    clean.close();
  }
}

/** A scan of `root` that compares every path with its record in `manifest`. */
export async function fullScan(root: string, manifest: string): Promise<unknown> {
  return comparable(await scanRoot(await openRoot(root), await readManifestFile(manifest), { hostname: 'h' }));
}
